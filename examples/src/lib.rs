//! xdsc-examples: programs that use xdsc as a library (see the `bin` targets and `models/`).

pub mod filter;
pub mod inventory;

/// The value after `name` on the command line, or `default`: the examples' whole flag parser.
///
/// ```
/// assert_eq!(xdsc_examples::arg("--not-given", "x"), "x");
/// ```
pub fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}
