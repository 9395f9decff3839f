//! Model inputs from frames and cubes. Owned by the detection work; see the
//! module docs for the layout.
