#!/usr/bin/python3
# Judges each JSON file against a JSON Schema with python3-jsonschema (not
# kbsim's code), in one process: prints "valid FILE" or "invalid FILE:
# MESSAGE" per file, in order. Exit 0 when every file was judged (valid or
# not), 2 when the schema itself or a file could not be read.
import json
import sys

from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for


def judge(schema, paths):
    with open(schema) as f:
        schema = json.load(f)
    cls = validator_for(schema)
    cls.check_schema(schema)
    check = cls(schema)
    for path in paths:
        with open(path) as f:
            doc = json.load(f)
        error = next(iter(sorted(check.iter_errors(doc), key=str)), None)
        if error is None:
            print("valid", path)
        else:
            print("invalid %s: %s" % (path, error.message.splitlines()[0]))


try:
    judge(sys.argv[1], sys.argv[2:])
except (OSError, ValueError, SchemaError) as e:
    print("error %s: %s" % (getattr(e, "filename", None) or sys.argv[1], e),
          file=sys.stderr)
    sys.exit(2)
