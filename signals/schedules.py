from signalhub.schedules import ScheduleSpec

SCHEDULES = [
    ScheduleSpec(
        name="signalhub.expire_open_signals",
        func="signals.tasks.expire_open_signals",
        cron="15 0 * * *",
        description="Daily: mark signals open longer than SIGNALHUB_EXPIRE_AFTER_DAYS as expired.",
    ),
    ScheduleSpec(
        name="signalhub.flush_journals",
        func="signals.tasks.flush_journals",
        minutes=1,
        # Each run repeats every SIGNALHUB_FLUSH_INTERVAL seconds for about a minute.
        kwargs={"repeat": True},
        description="Every SIGNALHUB_FLUSH_INTERVAL seconds: store what journals hold (crashed processes, failed flushes).",
    ),
    ScheduleSpec(
        name="signalhub.archive_signals",
        func="signals.tasks.archive_old_signals",
        # 02:30 UTC on the 1st: after the daily expiry, at a quiet hour.
        cron="30 2 1 * *",
        description="Monthly: move signals older than SIGNALHUB_ARCHIVE_MONTHS (12) calendar months to the archive "
                    "database; switched off by SIGNALHUB_ARCHIVE_SCHEDULE_ENABLED=0.",
    ),
    ScheduleSpec(
        name="signalhub.monitor_snapshot",
        func="signals.tasks.log_monitor_snapshot",
        minutes=15,
        description="Every 15 minutes: log the monitor's status line and each problem.",
    ),
]
