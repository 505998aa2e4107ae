#!/usr/bin/python3
# Runs the Python judges of this folder (schema_each.py, junit_counts.py,
# junit_shape.py) one after the other in one process, as if each were
# started on its own: a test program keeps one judge from its first
# request to its exit (proc_judge in tests/proc.c), since starting
# python3 and importing jsonschema or junitparser costs 0.1 to 0.2 s of
# CPU a time, and a suite asks dozens of times.
#
# A request is a line on standard input: the script's path, then its
# arguments, tab-separated. The script runs as __main__ with that argv;
# the answer is a line "OUT ERR STATUS" (the byte counts of what it wrote
# to standard output and standard error, and its exit status, 1 for an
# exception as python3 would give), then those bytes. It ends when its
# standard input does.
import contextlib
import io
import runpy
import sys
import traceback


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    status = 0
    sys.argv = argv
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(argv[0], run_name="__main__")
        except SystemExit as e:
            if e.code is None:
                status = 0
            elif isinstance(e.code, int):
                status = e.code
            else:
                print(e.code, file=sys.stderr)
                status = 1
        except Exception:
            traceback.print_exc()
            status = 1
    return out.getvalue().encode(), err.getvalue().encode(), status


answer = sys.stdout.buffer
for request in sys.stdin:
    o, e, status = run(request.rstrip("\n").split("\t"))
    answer.write(b"%d %d %d\n" % (len(o), len(e), status))
    answer.write(o + e)
    answer.flush()
