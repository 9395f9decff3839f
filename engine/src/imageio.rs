//! Reading and writing pictures as files (being written).
