from signalhub.schedules import ScheduleSpec

SCHEDULES = [
    ScheduleSpec(
        name="signalhub.sync.deliver",
        func="sync.tasks.deliver_for_a_minute",
        minutes=1,
        description="Every minute: delivery passes every SIGNALHUB_SYNC_INTERVAL seconds for about a minute.",
    ),
    ScheduleSpec(
        name="signalhub.sync.prune_attempts",
        func="sync.tasks.prune_attempts",
        cron="40 0 * * *",
        description="Daily: delete attempt log rows older than SIGNALHUB_SYNC_ATTEMPT_RETENTION_DAYS; "
                    "queue any signal that has no delivery.",
    ),
]
