//! `boxes.events`: the per-box ordered log.

use super::GenericClient;
