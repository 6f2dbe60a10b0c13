"""Child process of ``litert_ref.LiteRTReference``: ``python -m tvm_bridge.litert_worker MODEL``.

Loads the model in a LiteRT interpreter on the reference kernels (every tensor preserved) and serves
requests read from stdin; each message, both ways, is a pickle. Replies go to the original stdout,
while anything LiteRT itself prints is sent to stderr. A LiteRT abort kills only this process.
"""

from __future__ import annotations

import os
import pickle
import sys


def serve(path: str, requests, replies) -> None:
    """Send the model's tensor/op/input/output details, then answer ``(input, tensor indices)`` requests
    with ``("ok", {index: array})`` (or ``("error", message)``) until ``None`` or end of input."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    def reply(message) -> None:
        pickle.dump(message, replies)
        replies.flush()

    try:
        interpreter = Interpreter(path, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                                  experimental_preserve_all_tensors=True)
        interpreter.allocate_tensors()
        reply(("ok", ([dict(t) for t in interpreter.get_tensor_details()],
                      interpreter._get_ops_details(),  # private in ai-edge-litert 2.x, index = flatbuffer op index
                      interpreter.get_input_details()[0], interpreter.get_output_details()[0])))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        reply(("error", f"{type(exc).__name__}: {exc}"))
        return
    input_index = interpreter.get_input_details()[0]["index"]
    while True:
        try:
            request = pickle.load(requests)
        except EOFError:
            return
        if request is None:
            return
        x, indices = request
        try:
            interpreter.set_tensor(input_index, x)
            interpreter.invoke()
            reply(("ok", {i: interpreter.get_tensor(i).copy() for i in indices}))
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            reply(("error", f"{type(exc).__name__}: {exc}"))


def main() -> None:
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # LiteRT's own prints must not corrupt the replies
    serve(sys.argv[1], sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
