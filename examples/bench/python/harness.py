"""The benchmark's Python side: measures one completion, or lists the HumanEval problems.

The benchmark (examples/bench/execution.hpp) embeds this file, writes it to a fresh
temporary folder per completion and runs it there as `python3 -I harness.py assess JOB`
in a child process whose CPU time, address space, file size and process count it has
limited (setrlimit) and whose wall time it bounds (the whole process group is killed).

assess JOB: JOB is a JSON object {prompt, completion, stopped_by_limit, cut, entry_point,
returns_value, test, test_helpers, test_in_program}. Prints two JSON lines on stdout:
  {"analysis": {...}}  what the code is (ast + pyflakes), measured before anything runs;
  {"verdict": {...}}   whether the test passed, printed only after it returned.
The program (prompt + completion, cut where the definition ends when `cut`) then runs
in this process behind an audit hook (install_sandbox) with the current folder ("work/")
as the only writable place. The test is `check(candidate)`, candidate being the program's
`entry_point`: HumanEval's own test runs after the program in its namespace (as its
harness does); our task tests (examples/bench/tasks/) run in a namespace of their own
after `test_helpers` (task_helpers.py), and may provide stub modules first (`stub_modules()`).

humaneval FILE: prints the problems of HumanEval.jsonl(.gz) as one JSON array.
"""
import ast
import gzip
import io
import json
import os
import sys

try:
    from pyflakes import checker as pyflakes_checker
except ImportError:  # the best-practice figures are then "not measured"
    pyflakes_checker = None


# ----------------------------------------------------------------------------- the program

DEFINITION_STARTS = ("def ", "async def ", "class ", "@", "import ", "from ", "#")


def parses(source):
    try:
        ast.parse(source)
        return True
    except (SyntaxError, ValueError):
        return False


def cut_program(prompt, completion, stopped_by_limit):
    """prompt + completion, up to the completion's first top-level line that is not part of a
    definition: further definitions (helpers such as `merge` or a `Node` class), imports,
    decorators and comments stay; anything that would run at import (a call, a print, an
    assignment, `if __name__ == ...`) ends the program. A closing bracket at column 0 does
    not end it. When the token limit cut the completion off, its unfinished last line goes
    and, while the rest does not parse, the last top-level block with it."""
    text = prompt + completion
    pieces = text.split("\n")  # Python's own line ends (not str.splitlines', which has more)
    lines = [p + "\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    first = prompt.count("\n") + (0 if prompt.endswith("\n") else 1)  # the first line the completion starts
    blocks = []  # where each top-level definition after the prompt starts
    end = len(lines)
    for i in range(first, len(lines)):
        line = lines[i]
        if not line.strip() or line[0].isspace() or line[0] in ")]}":
            continue
        if not line.startswith(DEFINITION_STARTS):
            end = i
            break
        blocks.append(i)
    program = "".join(lines[:end])
    if end < len(lines) or not stopped_by_limit:
        return program
    if not text.endswith("\n") and len(lines) > first:
        lines = lines[:-1]
        program = "".join(lines)
    while not parses(program) and blocks and blocks[-1] < len(lines):
        program = "".join(lines[:blocks.pop()])
    return program


# ----------------------------------------------------------------------------- logic flow

CONTROL = (
    (ast.If, "if"), (ast.IfExp, "if"), (ast.For, "for"), (ast.AsyncFor, "for"), (ast.While, "while"),
    (ast.Try, "try"), (ast.With, "with"), (ast.AsyncWith, "with"), (ast.Return, "return"), (ast.Raise, "raise"),
    (ast.ListComp, "comprehension"), (ast.SetComp, "comprehension"), (ast.DictComp, "comprehension"),
    (ast.GeneratorExp, "comprehension"), (ast.Yield, "yield"),
)
if hasattr(ast, "TryStar"):
    CONTROL += ((ast.TryStar, "try"),)


def is_trivial(body):
    """A body of nothing but a docstring, `pass` and `...`."""
    for stmt in body:
        if isinstance(stmt, ast.Pass):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and (
                isinstance(stmt.value.value, str) or stmt.value.value is Ellipsis):
            continue
        return False
    return True


def always_leaves(body):
    """True when every path through the statements ends in return or raise (or loops
    forever: `while True` without break)."""
    for stmt in body:
        if isinstance(stmt, (ast.Return, ast.Raise)):
            return True
        if isinstance(stmt, ast.If) and always_leaves(stmt.body) and always_leaves(stmt.orelse):
            return True
        if isinstance(stmt, (ast.With, ast.AsyncWith)) and always_leaves(stmt.body):
            return True
        if isinstance(stmt, ast.Try):
            if stmt.finalbody and always_leaves(stmt.finalbody):
                return True
            handled = all(always_leaves(h.body) for h in stmt.handlers)
            if handled and (always_leaves(stmt.body) or (stmt.orelse and always_leaves(stmt.orelse))):
                return True
        if isinstance(stmt, ast.While) and isinstance(stmt.test, ast.Constant) and stmt.test.value:
            if not any(isinstance(n, ast.Break) for n in ast.walk(stmt)):
                return True
        if hasattr(ast, "Match") and isinstance(stmt, ast.Match):
            irrefutable = any(isinstance(c.pattern, ast.MatchAs) and c.pattern.pattern is None and c.guard is None
                              for c in stmt.cases)
            if irrefutable and all(always_leaves(c.body) for c in stmt.cases):
                return True
    return False


def find_definition(tree, name):
    """The last top-level def, class or assignment of `name`."""
    found = None
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and stmt.name == name:
            found = stmt
        elif isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
            found = stmt
    return found


def logic_flow(tree, entry_point, returns_value):
    node = find_definition(tree, entry_point)
    result = {"defined": node is not None, "has_body": False, "control": [], "all_paths_return": None}
    if node is None:
        return result
    control = set()
    for sub in ast.walk(node):
        for kind, name in CONTROL:
            if isinstance(sub, kind):
                control.add(name)
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id == entry_point:
            control.add("recursion")
    if isinstance(node, ast.ClassDef):
        methods = [s for s in node.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
        result["has_body"] = any(not is_trivial(m.body) for m in methods)
    elif isinstance(node, ast.Assign):
        value = node.value
        result["has_body"] = not (isinstance(value, ast.Constant) and value.value in (None, Ellipsis))
    else:
        result["has_body"] = not is_trivial(node.body)
        if returns_value:
            result["all_paths_return"] = always_leaves(node.body)
    result["control"] = sorted(control)
    return result


def lint(tree, filename):
    """pyflakes' findings: [{line, kind, message}], or None without pyflakes."""
    if pyflakes_checker is None:
        return None
    found = pyflakes_checker.Checker(tree, filename=filename).messages
    found.sort(key=lambda m: (m.lineno, getattr(m, "col", 0)))
    return [{"line": m.lineno, "kind": type(m).__name__, "message": m.message % m.message_args} for m in found]


def analyse(program, entry_point, returns_value):
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError) as e:
        return {"parses": False, "error": "%s: %s" % (type(e).__name__, e), "lint": None if pyflakes_checker is None else []}
    analysis = {"parses": True}
    analysis.update(logic_flow(tree, entry_point, returns_value))
    analysis["lint"] = lint(tree, "completion.py")
    return analysis


# ----------------------------------------------------------------------------- the sandbox

class Refused(Exception):
    """What the audit hook raises: the program tried something the sandbox forbids."""


def install_sandbox(root):
    """Adds an audit hook (it cannot be removed) that refuses, for the rest of the process:
    sockets, subprocesses, fork/exec/spawn, signals to other processes, ctypes and the
    modules that bypass the hooks, changing directory, links, raising rlimits, finding
    objects through gc, more audit hooks; and any write, create, rename or delete outside
    `root` (the current folder). Everything the hook uses is bound now, so a program that
    replaces builtins or module functions does not change what it checks."""
    root = os.path.realpath(root)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    refused_prefixes = (
        "socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
        "os.kill", "os.killpg", "os.chdir", "os.chroot", "os.symlink", "os.link", "os.setuid", "os.setgid", "pty.",
        "signal.pthread_kill", "ctypes.", "resource.setrlimit", "resource.prlimit", "gc.get_", "sys.addaudithook",
        "webbrowser.",
    )
    refused_modules = frozenset(("ctypes", "_ctypes", "_posixsubprocess", "_xxsubinterpreters", "cffi", "_testcapi",
                                 "_testinternalcapi", "multiprocessing", "_multiprocessing"))
    # Events that write a path: the positions of their path arguments and of their dir_fd arguments.
    path_events = {
        "os.remove": ((0,), (1,)), "os.rmdir": ((0,), (1,)), "os.mkdir": ((0,), (2,)), "os.chmod": ((0,), (2,)),
        "os.chown": ((0,), (3,)), "os.utime": ((0,), (3,)), "os.rename": ((0, 1), (2, 3)), "os.truncate": ((0,), ()),
        "os.mkfifo": ((0,), (2,)), "os.mknod": ((0,), (3,)), "os.chflags": ((0,), ()), "os.lchmod": ((0,), ()),
        "os.lchflags": ((0,), ()), "os.setxattr": ((0,), ()), "os.removexattr": ((0,), ()),
        "shutil.rmtree": ((0,), (1,)), "shutil.copyfile": ((1,), ()), "shutil.copymode": ((1,), ()),
        "shutil.copystat": ((1,), ()), "shutil.copytree": ((1,), ()), "shutil.move": ((0, 1), ()),
        "shutil.chown": ((0,), ()), "shutil.make_archive": ((0,), ()), "shutil.unpack_archive": ((1,), ()),
        "sqlite3.connect": ((0,), ()), "tempfile.mkstemp": ((0,), ()), "tempfile.mkdtemp": ((0,), ()),
    }

    def inside(path, _isinstance=isinstance, _str=str, _bytes=bytes, _fspath=os.fspath, _fsdecode=os.fsdecode,
               _root=root):
        """Whether `path` names `root` or something under it (lexically: no symlink can exist
        under root, since creating one is refused, and the current folder cannot change)."""
        if _isinstance(path, int):
            return True  # an open file descriptor: writing to it was allowed when it was opened
        try:
            path = _fspath(path)
        except TypeError:
            return False
        if _isinstance(path, _bytes):
            path = _fsdecode(path)
        if not _isinstance(path, _str):
            return False
        if path in (":memory:", ""):
            return True  # sqlite's in-memory database, tempfile's default folder
        full = path if path.startswith("/") else _root + "/" + path
        parts = []
        for part in full.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(part)
        normal = "/" + "/".join(parts)
        return normal == _root or normal.startswith(_root + "/")

    def hook(event, args, _Refused=Refused, _inside=inside, _prefixes=refused_prefixes, _modules=refused_modules,
             _paths=path_events, _write_flags=write_flags, _len=len, _isinstance=isinstance, _int=int, _bool=bool,
             _str=str):
        if event.startswith(_prefixes):
            raise _Refused("refused: " + event)
        if event == "import":
            name = args[0]
            if name in _modules or name.split(".")[0] in _modules:
                raise _Refused("refused: import " + name)
            return
        if event == "open":
            path, mode, flags = args
            if flags & _write_flags:
                if mode is None and not _isinstance(path, _int) and not (
                        _isinstance(path, _str) and path.startswith("/")):
                    raise _Refused("refused: os.open for writing with a relative path")  # it may be a dir_fd's
                if not _inside(path):
                    raise _Refused("refused: writing %r outside the sandbox" % (path,))
            return
        spec = _paths.get(event)
        if spec is not None:
            path_positions, dir_fd_positions = spec
            for i in dir_fd_positions:  # -1 (none given) and AT_FDCWD mean the current folder
                fd = args[i] if i < _len(args) else None
                if _isinstance(fd, _int) and not _isinstance(fd, _bool) and fd not in (-1, -100):
                    raise _Refused("refused: %s with a dir_fd" % event)
            for i in path_positions:
                if i < _len(args) and args[i] is not None and not _inside(args[i]):
                    raise _Refused("refused: %s %r outside the sandbox" % (event, args[i]))

    sys.addaudithook(hook)


# ----------------------------------------------------------------------------- running

def describe(error):
    """The error and where it happened in the program or the test ("at <test>:12")."""
    text = "%s: %s" % (type(error).__name__, error)
    if len(text) > 300:
        text = text[:297] + "..."
    place, tb = None, error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in ("<test>", "<test helpers>", "<completion>"):
            place = "%s:%d" % (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return text + (" at " + place if place else "")


def run_test(job, program):
    """Runs program and test; returns the verdict {passed, reason}. The sandbox is already in place."""
    entry_point = job["entry_point"]
    test = job["test"]
    program_namespace = {"__name__": "__completion__"}
    test_namespace = {"__name__": "__test__"}
    stage = "test setup"
    try:
        if not job["test_in_program"]:
            exec(compile(job["test_helpers"], "<test helpers>", "exec"), test_namespace)
            exec(compile(test, "<test>", "exec"), test_namespace)
            stubs = test_namespace.get("stub_modules")
            if stubs is not None:
                sys.modules.update(stubs())
        stage = "program"
        exec(compile(program, "<completion>", "exec"), program_namespace)
        if job["test_in_program"]:
            stage = "test setup"
            exec(compile(test, "<test>", "exec"), program_namespace)
            test_namespace = program_namespace
        stage = "test"
        if entry_point not in program_namespace:
            return {"passed": False, "reason": "%s is not defined" % entry_point}
        test_namespace["check"](program_namespace[entry_point])
    except BaseException as e:  # SystemExit, KeyboardInterrupt, MemoryError, RecursionError: all failures
        return {"passed": False, "reason": "%s: %s" % (stage, describe(e))}
    return {"passed": True, "reason": ""}


def assess(job_path):
    with open(job_path, encoding="utf-8", errors="replace") as f:
        job = json.load(f)
    if job["cut"]:
        program = cut_program(job["prompt"], job["completion"], job["stopped_by_limit"])
    else:
        program = job["prompt"] + job["completion"]
    out = sys.stdout
    dumps, flush, exit_now = json.dumps, out.flush, os._exit  # bound before the program can replace them
    analysis = analyse(program, job["entry_point"], job["returns_value"])
    analysis["program"] = program
    out.write(dumps({"analysis": analysis}) + "\n")
    flush()
    if not job["test"]:
        exit_now(0)
    sink = open(os.devnull, "w")
    install_sandbox(os.getcwd())
    sys.stdout = sys.stderr = sink  # what the program prints is not the harness's output
    sys.stdin = io.StringIO("")
    verdict = run_test(job, program)
    try:
        out.write(dumps({"verdict": verdict}) + "\n")
        flush()
    finally:
        exit_now(0)  # no atexit handlers or threads of the program


def list_humaneval(path):
    opener = gzip.open if path.endswith(".gz") else open
    problems = []
    with opener(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            p = json.loads(line)
            for key in ("task_id", "prompt", "entry_point", "canonical_solution", "test"):
                if not isinstance(p.get(key), str):
                    raise ValueError("%s: line %d has no text field %r" % (path, number, key))
            problems.append({key: p[key] for key in ("task_id", "prompt", "entry_point", "canonical_solution", "test")})
    json.dump(problems, sys.stdout)
    sys.stdout.write("\n")


def main(argv):
    if len(argv) == 3 and argv[1] == "assess":
        assess(argv[2])
    elif len(argv) == 3 and argv[1] == "humaneval":
        try:
            list_humaneval(argv[2])
        except (OSError, ValueError, EOFError) as e:
            sys.stderr.write("%s\n" % e)
            sys.exit(1)
    else:
        sys.stderr.write("usage: harness.py assess JOB.json | humaneval FILE.jsonl.gz\n")
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
