"""Budget reservations, without a server: a clip starts only while its estimate still fits."""

from __future__ import annotations

from workflows.budget import Budget


def test_no_budget_never_refuses_or_reserves() -> None:
    budget = Budget(None, 1.0)
    assert budget.reserve(1, 100.0, spent=1e6) is None
    assert budget.reserved == 0.0


def test_clips_reserve_until_the_next_would_go_over() -> None:
    budget = Budget(1.0, 0.1)  # 0.1 a second: a 4 s clip is about 0.40
    assert budget.reserve(1, 4.0, spent=0.0) is None
    assert budget.reserve(2, 4.0, spent=0.0) is None
    refusal = budget.reserve(3, 4.0, spent=0.0)
    assert refusal == (
        "budget: this clip would cost about 0.40, and 0.80 of the 1.00 budget is already "
        "spent or committed"
    )


def test_a_clip_that_fits_exactly_starts() -> None:
    budget = Budget(0.3, 0.1)
    assert budget.reserve(1, 1.0, spent=0.1) is None
    assert budget.reserve(2, 1.0, spent=0.1) is None  # 0.1 + 0.1 + 0.1 == 0.3 within rounding


def test_spent_money_counts_and_released_reservations_free_room() -> None:
    budget = Budget(1.0, 0.1)
    assert budget.reserve(1, 5.0, spent=0.0) is None
    assert budget.reserve(2, 6.0, spent=0.0) is not None
    budget.release(1)
    assert budget.reserved == 0.0
    assert budget.reserve(2, 6.0, spent=0.5) is not None, "what clip 1 spent still counts"
    assert budget.reserve(2, 6.0, spent=0.3) is None
    budget.release(99)  # a clip that reserved nothing (refused) releases nothing
    assert budget.reserved == 0.6
