"""app.ui.bind gives a module-level handler its App context while keeping what Gradio reads from a handler:
the remaining signature, the type hints it injects gr.Request / gr.Progress by, and whether it streams (a
generator function). A plain wrapper turned the admin's streaming watch into a one-shot call once (caught only
by a browser test)."""

from __future__ import annotations

import inspect
import typing

import gradio as gr

from app.ui import bind


def test_bind_keeps_signature_type_hints_and_generators():
    def handler(app, x: int, request: gr.Request = None):
        return app, x

    def stream(app, x: int):
        yield app
        yield x

    one, many = bind(handler, "ctx"), bind(stream, "ctx")
    assert list(inspect.signature(one).parameters) == ["x", "request"]
    assert list(inspect.signature(many).parameters) == ["x"]
    assert typing.get_type_hints(one)["request"] is gr.Request
    assert one(3) == ("ctx", 3) and one(x=4) == ("ctx", 4)
    assert not inspect.isgeneratorfunction(one)
    assert inspect.isgeneratorfunction(many) and list(many(5)) == ["ctx", 5]
