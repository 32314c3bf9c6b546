"""Phase 3 (03_parameter_group): a custom Aurora DB cluster parameter group."""
