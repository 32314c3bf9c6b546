"""Phase 8 (08_cutover): cut-over and fallback of one application, schema or tenant."""
