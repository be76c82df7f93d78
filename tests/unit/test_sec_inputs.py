"""Names and S3 targets with a newline, whitespace or control characters in them are
refused: ``$`` in a pattern also matches before a trailing newline."""

from __future__ import annotations

import pytest

from automl_core.artifacts import artifact_store_for, parse_s3_uri
from automl_core.errors import UserInputError
from automl_core.experiment.request import NAME_PATTERN, SearchRequest


def request(**fields: object) -> SearchRequest:
    return SearchRequest(dataset="d", space={"lr": [0.01, 0.1]}, method="grid", **fields)


@pytest.mark.parametrize("name", ["nl\n", "nl\n\n", "\nnl", "a b", "nl\r", "a" * 201, ""])
def test_a_name_with_a_newline_or_other_bad_characters_is_refused(name: str) -> None:
    """`automl run --name $'nl\\n'` created an experiment named 'nl\\n'."""
    with pytest.raises(UserInputError, match=r"The value of name is .*, but must be 1-200"):
        request(name=name).validate()
    with pytest.raises(UserInputError, match=r"The value of parent_experiment is .*, but must"):
        request(parent_experiment=name).validate()
    assert NAME_PATTERN.match(name) is None  # for callers that .match it themselves


@pytest.mark.parametrize("name", ["nl", "exp-1.2:3+4_5", "a" * 200])
def test_good_names_still_pass(name: str) -> None:
    request(name=name, parent_experiment=name).validate()
    assert NAME_PATTERN.fullmatch(name)


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket\n/x",
        "s3://bucket\n",
        "s3://bucket/x\n",
        "s3://bucket/a b",
        "s3://bucket/a\tb",
        "s3://bucket/a\x00b",
        "s3://bucket/a\x7fb",
        "s3://bucket/a\x85b",
        "s3://bucket/a\u2028b",
    ],
)
def test_an_s3_target_with_whitespace_or_control_characters_is_refused(uri: str) -> None:
    """parse_s3_uri('s3://bucket\\n/x') gave ('bucket\\n', 'x')."""
    with pytest.raises(UserInputError, match="The S3 target .* (not a valid bucket|without whi)"):
        parse_s3_uri(uri)


def test_good_s3_targets_still_parse() -> None:
    assert parse_s3_uri("s3://bucket/x") == ("bucket", "x")
    assert parse_s3_uri("s3://my.bucket-1/a/b=c/d_e.f/") == ("my.bucket-1", "a/b=c/d_e.f")
    assert parse_s3_uri("s3://bucket") == ("bucket", "")
    # What a user typed is trimmed before it is parsed: a newline at the end is no error.
    assert artifact_store_for(" s3://bucket/x\n").describe() == "s3://bucket/x"


def test_a_space_given_as_a_path_is_named_with_the_loader() -> None:
    # From a notebook, SearchRequest(space="spaces/digits.yaml") said "the search space is
    # empty".
    from automl_core.experiment.request import SearchRequest

    request = SearchRequest(dataset="digits", space="spaces/digits.yaml", method="random")  # type: ignore[arg-type]
    with pytest.raises(UserInputError, match=r"is a str, but must be a mapping.*load_spec_file"):
        request.validate()
