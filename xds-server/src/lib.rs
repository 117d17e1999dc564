//! xdsc-server: not yet built; see README.md.
