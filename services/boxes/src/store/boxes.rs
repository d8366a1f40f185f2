//! `boxes.boxes` and `boxes.members`.

use super::GenericClient;
