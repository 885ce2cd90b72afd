//! Integration tests, one binary: each module starts what it needs (the
//! township portal and a webhook receiver on 127.0.0.1:0, a temp warehouse).

mod analyst;
mod cases;
mod cli;
mod commit;
mod documents;
mod end_to_end;
mod prose;
mod support;
mod timeliness;
mod transport;
