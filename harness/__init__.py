"""quantcompare harness: CLI, run configuration, pipeline, cache, results schema, release gate."""
