//! Chapter 8: network namespaces and veth pairs.
