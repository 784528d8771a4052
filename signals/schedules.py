from signalhub.schedules import ScheduleSpec

SCHEDULES = [
    ScheduleSpec(
        name="signalhub.expire_open_signals",
        func="signals.tasks.expire_open_signals",
        cron="15 0 * * *",
        description="Daily: mark signals open longer than SIGNALHUB_EXPIRE_AFTER_DAYS as expired.",
    ),
]
