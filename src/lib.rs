//! murmur: placeholder
