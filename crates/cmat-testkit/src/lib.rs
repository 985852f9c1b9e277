//! cmat's test kit, a dev-dependency only: generated tenants and bills for benchmarks and
//! scale tests, and what the tests share. Never part of the binary a customer runs.

pub mod tenant;

#[cfg(test)]
mod tests {
    /// The engine's tests plan against a copy of the simulator's picklists; the copy must not
    /// drift from what `cmat-sim` serves.
    #[test]
    fn the_engines_reference_picklists_are_the_simulators() {
        assert_eq!(crate::tenant::reference_picklists(), crate::tenant::simulator_picklists());
    }
}
