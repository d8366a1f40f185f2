//! Realtime service (`SPEC.md` §9): `GET /box-users/{id}/ws` delivers to each open socket the
//! envelopes published on its identity's Redis channel `user_{id}:ws`.
//!
//! Shape of a process:
//! - [`registry`]: the open sockets of the process (identity → small list of queue senders). A
//!   published payload is copied once into a shared, reference-counted buffer and offered
//!   (`try_send`) to each socket's bounded queue, so fan-out never waits on a client.
//! - [`subscriber`]: one Redis pub/sub connection per process, owned by one task. An identity is
//!   subscribed while it has at least one socket here. Several processes behind a load balancer
//!   each subscribe for their own sockets, so one publish reaches every process that holds a
//!   socket of the identity. On a Redis Cluster, [`shards`] does the same with one connection per
//!   master and sharded pub/sub (`SSUBSCRIBE`).
//! - [`socket`]: one task per socket selecting over client frames, the outbound queue, the ping
//!   interval, the idle deadline and the token's `exp`. It consumes client `ack`s (§9.5) and
//!   closes with the contract's codes: 4001 at expiry or revocation, 1013 for a slow consumer,
//!   1009 for an oversized message, 1002 for a protocol violation, 1011 when the Redis
//!   subscription is lost, 1001 at shutdown. The hub caps sockets per identity and per process.
//! - [`routes`]: the handshake checks of §9.1, in order, answered with the §4 body; `/healthz`
//!   and `/readyz`.
//! - [`store`]: the shared command connection for revocation lookups, counter resets and the ack
//!   echo.
//!
//! Memory per idle socket is kept small on purpose. After the 101, [`routes::ws::upgrade`] keeps
//! only the TCP stream and hands it to a task of its own, so actix-http's per-connection state
//! (an 8 KiB read and an 8 KiB write buffer, and the dispatcher's task of about 9 KiB) is freed;
//! [`conn`] reads into a buffer only while bytes are waiting. What stays is the socket's task
//! (about 1.2 KB; Redis round trips are boxed only while they run), a queue of at most
//! `WS_QUEUE_CAPACITY` entries (each a pointer-sized handle on a shared payload), one registry
//! slot and the stream's registration with the runtime. No socket has a Redis connection of its
//! own. `tests/memory.rs` measures it on the release binary: about 3.7 KiB of resident memory per
//! idle socket, where an idle keep-alive HTTP connection costs about 18 KiB.

pub mod config;
pub mod conn;
pub mod error;
pub mod registry;
pub mod routes;
pub mod shards;
pub mod socket;
pub mod startup;
pub mod store;
pub mod subscriber;
