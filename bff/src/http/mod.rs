//! The HTTP surface: the route table and its handlers (`routes`, and
//! `workflows` for the workflow endpoints), the request helpers they share
//! (`extract`), the middleware chain and the probes. Handlers read the
//! request, find the element the caller may use and get the answer from
//! `features` (and `backends` for plain reads).

pub mod extract;
pub mod health;
pub mod limits;
pub mod middleware;
pub mod routes;
pub mod workflows;
