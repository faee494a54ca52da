//! Placeholder: the conformance suite is written next.
