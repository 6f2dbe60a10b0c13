"""Bridge to TVM (Relax): import, partition, external codegen. Not implemented yet."""
