from __future__ import annotations

import pytest

from gateway.canary import TOKEN_RE, add_canary, canary_scope, current_canary, new_canary


def test_canaries_are_random_and_have_the_checked_shape() -> None:
    a, b = new_canary(), new_canary()
    assert a != b
    assert TOKEN_RE.fullmatch(a) and TOKEN_RE.fullmatch(b)


def test_the_scope_sets_and_restores_the_current_canary() -> None:
    assert current_canary() is None
    with canary_scope("gwc-0000000000000001"):
        assert current_canary() == "gwc-0000000000000001"
        with canary_scope("gwc-0000000000000002"):
            assert current_canary() == "gwc-0000000000000002"
        assert current_canary() == "gwc-0000000000000001"
    assert current_canary() is None


def test_a_system_message_is_added_when_there_is_none() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "top_k": 3}
    out = add_canary(body, "gwc-00000000000000aa")
    assert out["messages"][0]["role"] == "system"
    assert "gwc-00000000000000aa" in out["messages"][0]["content"]
    assert out["messages"][1:] == body["messages"] and out["top_k"] == 3
    assert len(body["messages"]) == 1  # the caller's body is untouched


def test_an_existing_system_prompt_is_extended() -> None:
    body = {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}]
    }
    out = add_canary(body, "gwc-00000000000000bb")
    assert out["messages"][0]["content"].startswith("Be brief.\n\n")
    assert "gwc-00000000000000bb" in out["messages"][0]["content"]
    assert len(out["messages"]) == 2 and body["messages"][0]["content"] == "Be brief."

    parts = {"messages": [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]}]}
    out = add_canary(parts, "gwc-00000000000000cc")
    assert out["messages"][0]["content"][-1] == {
        "type": "text",
        "text": out["messages"][0]["content"][-1]["text"],
    }
    assert "gwc-00000000000000cc" in out["messages"][0]["content"][-1]["text"]


def test_a_body_without_messages_is_refused() -> None:
    with pytest.raises(ValueError, match="messages"):
        add_canary({"prompt": "hi"}, new_canary())
