// SPDX-License-Identifier: MIT OR Apache-2.0
//! For people: odmexport results summarised and compared (`summary`, `compare`), the HTML page about a run on a
//! clip (`report`), the figures of a run (`plot`), contact sheets of a dataset (`sheet`).

pub mod page;
pub mod plot;
pub mod results;
pub mod sheet;
