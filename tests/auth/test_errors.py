"""Failure reasons: stable labels, fixed descriptions."""

from __future__ import annotations

from gateway.auth import Failure, TokenError


def test_every_failure_has_a_unique_label_and_a_description() -> None:
    labels = [failure.label for failure in Failure]
    assert len(set(labels)) == len(labels)
    assert all(label.isidentifier() and label.islower() for label in labels)
    assert all(failure.description for failure in Failure)


def test_token_error_description_is_safe_for_a_header() -> None:
    for failure in Failure:
        description = TokenError(failure, "sub").description
        assert '"' not in description and "\\" not in description
        assert description.isprintable()


def test_token_error_carries_its_failure() -> None:
    error = TokenError(Failure.EXPIRED)
    assert error.failure is Failure.EXPIRED and str(error) == "The access token expired"
