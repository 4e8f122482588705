//! Test support shared by the integration tests of `mailmove-pst`: independent PST readers
//! ("peers") whose view of a PST the crate's own reader is checked against.

#![allow(dead_code)] // each test binary that includes this module uses a part of it

pub mod peers;
