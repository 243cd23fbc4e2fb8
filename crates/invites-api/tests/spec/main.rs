//! Tests of the generated OpenAPI document against the real Atlas contract.

mod fidelity;
