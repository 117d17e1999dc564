//! xdsc-kube: not yet built; see README.md.
