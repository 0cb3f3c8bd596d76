"""vmconform: conformance suite for the VM System Specification for Arm Processors."""
