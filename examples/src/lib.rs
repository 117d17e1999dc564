//! xdsc-examples: programs that use xdsc as a library (see the `bin` targets and `models/`).
