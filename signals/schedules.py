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
]
