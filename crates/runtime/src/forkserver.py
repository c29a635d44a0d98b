# Oxflow warm Python executor: a fork server (see crates/runtime/src/warm.rs).
#
# Started as `<python> -c <this script> [preload module ...]` with the protocol
# on stdin/stdout as JSON lines. It imports the preload modules once, then for
# every request forks a child that looks like `<python> -m <module> <argv...>`
# started from scratch: own session, own environment, own cwd, own log file.
#
# Replies (one JSON object per line):
#   {"ready": true, "pid": ..., "version": ..., "threads": n, "preload_errors": {...}}  once, at start
#   {"id": n, "pid": p}                       as soon as the child is forked
#   {"id": n, "exit_code": c} / {"id": n, "signal": s}   when the child ends
#   {"id": n, "error": "..."}                 when the request could not be started
#
# A spare child is forked ahead of time, after each request, and waits on a
# pipe for the next one, so the fork is off the critical path of the next
# step (about 1 ms a step). It does not pre-copy the server's memory: that
# was measured (MADV_POPULATE_WRITE) and on 2 cores the extra copying cost
# as much as the page faults it saved.
#
# The server is single-threaded on purpose: fork() in a process with other
# threads can leave locks held forever in the child. Child exits are noticed
# through a SIGCHLD handler + signal.set_wakeup_fd, multiplexed with the
# request pipe by select().
import os
import sys


def _main():
    import atexit
    import ctypes
    import errno
    import importlib
    import importlib.util
    import io
    import json
    import resource
    import runpy
    import select
    import signal
    import threading
    import traceback

    server_pid = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    # Die with Oxflow even if the Rust side forgot to arrange it.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    # Keep the protocol on private descriptors so that a stray print() in a
    # preloaded module cannot corrupt it, and so that children inherit nothing.
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)

    # `-c` puts '' (the server's cwd) first on sys.path; preloads must come
    # from the interpreter's own paths only.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]

    def split_pythonpath(value):
        return [p for p in (value or "").split(os.pathsep) if p]

    server_pp = set()
    for p in split_pythonpath(os.environ.get("PYTHONPATH")):
        server_pp.add(p)
        server_pp.add(os.path.abspath(p))
    base_path = [p for p in sys.path if p not in server_pp]

    preload_errors = {}
    for name in sys.argv[1:]:
        try:
            importlib.import_module(name)
        except BaseException as e:  # noqa: BLE001 - a failed preload is not fatal
            preload_errors[name] = "".join(traceback.format_exception_only(type(e), e)).strip()
    sys.argv = [sys.argv[0]]

    def send(obj):
        data = (json.dumps(obj) + "\n").encode()
        while data:
            try:
                n = os.write(proto_out, data)
            except InterruptedError:
                continue
            data = data[n:]

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_w)

    children = {}  # pid -> request id
    spare = []  # [pid, write end of its request pipe] while a spare waits

    def spare_main(request_fd):
        data = b""
        while not data.endswith(b"\n"):
            try:
                chunk = os.read(request_fd, 1 << 16)
            except InterruptedError:
                continue
            if not chunk:
                return 0  # discarded (or the server died) before any work
            data += chunk
        os.close(request_fd)
        return run_child(json.loads(data), close_protocol=False)

    def exit_code_of(code):
        if code is None:
            return 0
        if isinstance(code, int):
            return code & 0xFF
        try:
            print(code, file=sys.stderr)
        except BaseException:  # noqa: BLE001
            pass
        return 1

    def make_stdio(env):
        unbuffered = bool(env.get("PYTHONUNBUFFERED"))
        encoding, errors = None, None
        spec = env.get("PYTHONIOENCODING")
        if spec:
            enc, _, err = spec.partition(":")
            encoding = enc or None
            errors = err or None
        encoding = encoding or sys.stdout.encoding or "utf-8"

        def writer(fd, errs, line_buffering):
            raw = io.FileIO(fd, "w", closefd=False)
            buf = raw if unbuffered else io.BufferedWriter(raw)
            return io.TextIOWrapper(
                buf,
                encoding=encoding,
                errors=errs,
                line_buffering=line_buffering and not unbuffered,
                write_through=unbuffered,
            )

        sys.stdin = sys.__stdin__ = io.TextIOWrapper(
            io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding=encoding, errors=errors or "strict"
        )
        sys.stdout = sys.__stdout__ = writer(1, errors or "strict", False)
        sys.stderr = sys.__stderr__ = writer(2, "backslashreplace", True)

    def close_protocol_fds():
        signal.set_wakeup_fd(-1)
        for fd in (proto_in, proto_out, wake_r, wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def run_child(req, close_protocol=True):
        # Undo the server's own process state (a spare did it already).
        if close_protocol:
            close_protocol_fds()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != server_pid:
            return 1  # the server died between fork() and prctl()

        cgroup_procs = req.get("cgroup_procs")
        if cgroup_procs:
            try:
                with open(cgroup_procs, "w") as f:
                    f.write(str(os.getpid()))
            except OSError as e:
                os.write(2, f"oxflow fork server: could not join cgroup {cgroup_procs}: {e}\n".encode())
        limit = req.get("rlimit_as")
        if limit is not None:
            try:
                _, hard = resource.getrlimit(resource.RLIMIT_AS)
                if hard != resource.RLIM_INFINITY:
                    limit = min(limit, hard)
                # Lower the hard limit too, so the workload cannot raise it again.
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            except (OSError, ValueError) as e:
                os.write(2, f"oxflow fork server: could not set RLIMIT_AS: {e}\n".encode())

        log = os.open(req["log_path"], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)

        env = req["env"]
        os.environ.clear()
        os.environ.update(env)
        make_stdio(env)

        os.chdir(req["cwd"])
        # What `python -m` does at start-up: cwd first, then PYTHONPATH, then the rest.
        sys.path[:] = [os.getcwd()] + split_pythonpath(env.get("PYTHONPATH")) + base_path
        sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
        importlib.invalidate_caches()

        module = req["module"]
        # A preloaded copy of the main module would make runpy warn; `python -m`
        # runs it fresh as __main__ anyway.
        sys.modules.pop(module, None)
        sys.argv = [module] + list(req["argv"])
        code = 0
        try:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                print(f"{sys.executable}: No module named {module}", file=sys.stderr)
                code = 1
            else:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as e:
            code = exit_code_of(e.code)
        except BaseException:  # noqa: BLE001 - mirror the interpreter: print and exit 1
            traceback.print_exc()
            code = 1
        # Interpreter shutdown: wait for non-daemon threads, then atexit handlers.
        try:
            main = threading.main_thread()
            for t in threading.enumerate():
                if t is not main and not t.daemon:
                    t.join()
            atexit._run_exitfuncs()
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        return code

    def finish_child(body):
        """Runs `body` in a freshly forked child and exits with its code."""
        code = 1
        try:
            code = body()
        except BaseException:  # noqa: BLE001
            try:
                traceback.print_exc()
            except BaseException:  # noqa: BLE001
                pass
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BaseException:  # noqa: BLE001
                    pass
            os._exit(code)

    # OXFLOW_NO_SPARE=1 in Oxflow's environment turns spares off (for
    # measurements, or a kernel where they misbehave).
    use_spare = os.environ.get("OXFLOW_NO_SPARE", "") in ("", "0")

    def make_spare():
        if spare or not use_spare:
            return
        r, w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(r)
            os.close(w)
            return
        if pid == 0:
            # Die with the server, like every other child of it.
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != server_pid:
                os._exit(0)
            os.close(w)
            close_protocol_fds()
            finish_child(lambda: spare_main(r))
        os.close(r)
        spare[:] = [pid, w]

    def drop_spare():
        pid, w = spare
        spare.clear()
        try:
            os.close(w)
        except OSError:
            pass
        return pid

    def hand_to_spare(req):
        """Gives `req` to the waiting spare; returns its pid, or None if it is gone."""
        pid = spare[0]
        w = spare[1]
        data = (json.dumps(req) + "\n").encode()
        try:
            while data:
                try:
                    data = data[os.write(w, data):]
                except InterruptedError:
                    continue
        except OSError:
            drop_spare()
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            return None
        drop_spare()
        return pid

    def start(req):
        rid = req["id"]
        pid = hand_to_spare(req) if spare else None
        if pid is not None:
            children[pid] = rid
            send({"id": rid, "pid": pid})
            make_spare()
            return
        try:
            pid = os.fork()
        except OSError as e:
            send({"id": rid, "error": f"fork failed: {e}"})
            return
        if pid == 0:
            finish_child(lambda: run_child(req))
        children[pid] = rid
        send({"id": rid, "pid": pid})
        make_spare()

    def reap():
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            if spare and pid == spare[0]:
                drop_spare()  # a spare that died waiting; the next start makes another
            rid = children.pop(pid, None)
            if rid is None:
                continue
            if os.WIFSIGNALED(status):
                send({"id": rid, "signal": os.WTERMSIG(status)})
            else:
                send({"id": rid, "exit_code": os.WEXITSTATUS(status)})

    def shutdown():
        if spare:
            children[drop_spare()] = None
        for pid in list(children):
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return
            except InterruptedError:
                continue

    send(
        {
            "ready": True,
            "pid": server_pid,
            "version": sys.version.split()[0],
            "threads": threading.active_count(),
            "preload_errors": preload_errors,
        }
    )

    pending = b""
    while True:
        try:
            readable, _, _ = select.select([proto_in, wake_r], [], [], 1.0)
        except InterruptedError:
            continue
        if wake_r in readable:
            try:
                while os.read(wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
        reap()
        if proto_in in readable:
            try:
                data = os.read(proto_in, 1 << 16)
            except InterruptedError:
                continue
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    continue
                data = b""
            if not data:
                # Oxflow is done with us: kill and reap every child (the spare
                # too), then leave without an interpreter teardown (~10 ms).
                shutdown()
                os._exit(0)
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                try:
                    req = json.loads(line)
                    req["id"]
                except Exception as e:  # noqa: BLE001
                    os.write(2, f"oxflow fork server: bad request: {e}\n".encode())
                    continue
                start(req)


_main()
