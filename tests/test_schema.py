import json
import math

import pytest

from harness.schema import ROW_KEYS, SCHEMA_VERSION, Row, validate, write_csv, write_json_atomic


def _doc(rows):
    return {"schema_version": SCHEMA_VERSION, "rows": rows, "environment": {}, "manifests": {}, "source": {},
            "windows": {}, "cells": [], "flags": []}


def test_row_fills_unit_and_rejects_unknown_metric():
    r = Row("fp16", "transformers", "ppl", 12.0, 11.0, 13.0)
    assert set(r.as_dict()) == set(ROW_KEYS)
    assert Row("fp16", "transformers", "decode_tok_s", 5.0).unit == "tok/s"
    with pytest.raises(ValueError):
        Row("fp16", "transformers", "bogus", 1.0)


def test_validate_catches_problems():
    good = _doc([Row("fp16", "transformers", "ppl", 12.0).as_dict()])
    assert validate(good) == []
    assert validate({**good, "schema_version": 0})
    bad = _doc([{"variant": "fp16", "metric": "ppl", "value": 1.0}])
    assert any("keys" in p for p in validate(bad))
    assert any("missing key" in p for p in validate({"schema_version": SCHEMA_VERSION}))


def test_json_has_no_nan_and_csv_has_the_same_rows(tmp_path):
    rows = [Row("a", "r", "ppl", float("nan")).as_dict(), Row("a", "r", "kld_mean", 0.1, 0.05, float("inf")).as_dict()]
    write_json_atomic(tmp_path / "r.json", _doc(rows))
    back = json.loads((tmp_path / "r.json").read_text())
    assert back["rows"][0]["value"] is None and back["rows"][1]["ci_high"] is None
    write_csv(tmp_path / "r.csv", back["rows"])
    import pandas as pd

    df = pd.read_csv(tmp_path / "r.csv")
    assert list(df.columns) == list(ROW_KEYS) and len(df) == 2
    assert math.isclose(df.value[1], 0.1)
