//! xdsc-file: not yet built; see README.md.
