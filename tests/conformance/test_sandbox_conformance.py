"""Every pair of the corpus, replayed against the sandbox: same status, same body shape."""

from __future__ import annotations

import pytest

from tests.conformance.corpus import ConformancePair, load_pairs, shape_problems, type_name_matches
from tests.conformance.replay import prepare, replay


@pytest.mark.parametrize("pair", load_pairs(), ids=lambda pair: pair.id)
def test_the_sandbox_answers_as_the_pair_documents(pair: ConformancePair, braze_sandbox_factory):
    sandbox = prepare(pair, braze_sandbox_factory)
    observed = replay(pair, sandbox)
    assert (observed.kind, observed.status) == (pair.answer.kind, pair.answer.status), observed
    for name, type_name in pair.answer.headers.items():
        assert observed.headers is not None and name in observed.headers, f"no {name} header"
        value = observed.headers[name]
        assert type_name_matches(int(value) if type_name == "int" else value, type_name), (name, value)
    if observed.kind == "json":
        assert shape_problems(observed.body, pair.answer) == []
    assert sandbox.state.counter("internal_errors") == 0


def test_a_wrong_answer_would_fail_the_replay(braze_sandbox_factory):
    # The check can fail: a sandbox told to refuse the pair's user answers 400, not the documented 201.
    pair = next(p for p in load_pairs() if p.id == "track-attributes-processed")
    sandbox = prepare(pair, braze_sandbox_factory)
    sandbox.set_refusals(ids=["u1", "u2"])
    observed = replay(pair, sandbox)
    assert observed.status == 400
    assert shape_problems(observed.body, pair.answer) != []
