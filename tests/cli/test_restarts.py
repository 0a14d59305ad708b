"""The restart policy of the local stack: 1 s doubling to 30 s, reset once a child stayed up."""

from retention_cli.restarts import RestartBackoff


def test_delays_double_from_one_second_up_to_thirty_and_stay_there() -> None:
    backoff = RestartBackoff()
    delays = [backoff.delay_after_crash(uptime=0.5) for _ in range(8)]
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff.capped and backoff.crashes_in_a_row == 8


def test_a_child_that_stayed_up_starts_over_at_the_first_delay() -> None:
    backoff = RestartBackoff()
    for _ in range(4):
        backoff.delay_after_crash(uptime=1.0)
    assert backoff.delay_after_crash(uptime=59.0) == 16  # not long enough
    assert backoff.delay_after_crash(uptime=60.0) == 1
    assert not backoff.capped
