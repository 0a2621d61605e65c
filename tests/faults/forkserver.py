"""Run many short CLI invocations as real processes without paying torch's import each time.

Started once per test session by faultkit.ForkServer. It imports what every CLI start imports
(torch, the core modules), then for each request (a JSON line on stdin) forks a child that runs the
CLI exactly as `python -m tui.cli ...` or `python train_cli.py ...` would: as `__main__`, with its
own argv, cwd, environment, stdin from /dev/null and stdout/stderr into files. The child's exit
status goes back as one JSON line. Each case is a separate process with a real exit code; a
Python exception that escapes the CLI prints its traceback to stderr and exits 1, as the
interpreter does.
"""

import json
import os
import runpy
import signal
import sys
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402,F401  the expensive imports, shared by every child
import rich.console  # noqa: E402,F401
import core.checkpoint  # noqa: E402,F401
import core.evaluation.cli  # noqa: E402,F401
import core.sampling.recipes  # noqa: E402,F401
import core.sampling.samplers  # noqa: E402,F401
import core.training.trainer  # noqa: E402,F401


def exit_code(error: SystemExit) -> int:
    """What the interpreter makes of an uncaught SystemExit."""
    if error.code is None:
        return 0
    if isinstance(error.code, int):
        return error.code & 0xFF
    print(error.code, file=sys.stderr)
    return 1


def child(request: dict) -> None:
    code = 1
    try:
        for fd, name, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
            os.dup2(os.open(name, flags, 0o644), fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.alarm(int(request["timeout"]))  # a hung case dies with SIGALRM instead of hanging the tests
        kind, target = request["run"]
        sys.argv = [target, *request["argv"]]
        try:
            if kind == "module":
                runpy.run_module(target, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(target, run_name="__main__")
            code = 0
        except SystemExit as error:
            code = exit_code(error)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def main() -> None:
    reply = sys.stdout
    print("ready", file=reply, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(request)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), file=reply, flush=True)


if __name__ == "__main__":
    main()
