//! xdsc-examples: Examples of embedding xdsc as a library.
