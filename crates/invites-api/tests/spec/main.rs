//! Tests of the generated OpenAPI document: against the real Atlas contract, and its examples.

mod examples;
mod fidelity;
