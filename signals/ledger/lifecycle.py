"""Closing a position, by the legacy tracker's rules (kept so old reports still agree)."""


def profit_loss_pct(action, entry_price, exit_price):
    """Return P&L in percent: BUY (exit - entry) / entry * 100, SELL mirrored."""
    if action == "BUY":
        return (exit_price - entry_price) / entry_price * 100
    return (entry_price - exit_price) / entry_price * 100


def close_outcome(action, entry_price, target_price, stop_price, exit_price):
    """Return ``(profit_loss_pct, outcome)`` for a position closed at ``exit_price``.

    A BUY wins at or above its target and loses at or below its stop; a SELL is
    the mirror image. Between the two it is ``expired``. Where the target (or
    the stop) is missing, the sign of the P&L stands in for that comparison.
    """
    pnl = profit_loss_pct(action, entry_price, exit_price)
    if action == "BUY":
        reached_target = target_price is not None and exit_price >= target_price
        hit_stop = stop_price is not None and exit_price <= stop_price
    else:
        reached_target = target_price is not None and exit_price <= target_price
        hit_stop = stop_price is not None and exit_price >= stop_price
    if reached_target or (target_price is None and pnl > 0):
        return pnl, "win"
    if hit_stop or (stop_price is None and pnl < 0):
        return pnl, "loss"
    return pnl, "expired"
