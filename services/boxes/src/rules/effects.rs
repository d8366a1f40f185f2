//! What a rule decided to announce (§6.4), kept until the transaction commits.

use domain::event::EventType;
use domain::notification::{NewNotification, Notification};
use domain::{BoxId, FileId, IdentityId};

use crate::error::ApiResult;
use crate::load::{self, EventContext};
use crate::notify::Outbox;
use crate::store::boxes::BoxRow;
use crate::store::events::EventRow;
use crate::store::{self, GenericClient};

/// Types whose `event.new` raises the unread counter of the other members (§6.4).
fn counts(kind: EventType) -> bool {
    matches!(
        kind,
        EventType::MsgText
            | EventType::MsgFile
            | EventType::MemberJoin
            | EventType::MemberLeave
            | EventType::MemberKick
            | EventType::StateAccessMode
    )
}

/// An event inserted by a request, with who must hear about it after commit.
struct Announced {
    event: EventRow,
    /// `event.new` recipients; counters go to those of them that are members, minus the sender.
    recipients: Vec<IdentityId>,
}

/// Everything one posted event's transaction decided; sent once it has committed.
pub struct Effects {
    /// The event the client posted, returned in the response.
    pub posted: EventRow,
    pub then: Consequences,
    /// Blobs of encrypted files whose rows the transaction deleted, removed after commit.
    pub released: Vec<FileId>,
}

impl Effects {
    /// The usual outcome: `posted` announced to the members as the transaction leaves them and
    /// to its sender.
    pub(super) async fn announced<C: GenericClient>(c: &C, posted: EventRow) -> ApiResult<Self> {
        let mut then = Consequences::load(c, posted.box_id, Vec::new()).await?;
        let mut recipients = then.members.clone();
        recipients.push(posted.sender_id);
        then.announced.push(Announced { event: posted.clone(), recipients });
        Ok(Effects { posted, then, released: Vec::new() })
    }
}

/// What a committed write announces (§6.4), besides its answer.
pub struct Consequences {
    announced: Vec<Announced>,
    /// Members after the whole transaction, and which of them muted the box.
    members: Vec<IdentityId>,
    muted: Vec<IdentityId>,
    /// Stored in the transaction ([`Consequences::store`]), published after commit.
    notifications: Vec<(IdentityId, NewNotification)>,
    stored: Vec<(IdentityId, Notification)>,
    /// Identities that stopped being members (leave, kick): their unread counters go.
    departed: Vec<IdentityId>,
}

impl Consequences {
    /// Reads the members and their mutes as the transaction leaves them.
    pub async fn load<C: GenericClient>(
        c: &C,
        box_id: BoxId,
        notifications: Vec<(IdentityId, NewNotification)>,
    ) -> ApiResult<Self> {
        let members = store::boxes::member_ids(c, box_id).await?;
        let muted = store::settings::muted_among(c, box_id, &members).await?;
        Ok(Consequences {
            announced: Vec::new(),
            members,
            muted,
            notifications,
            stored: Vec::new(),
            departed: Vec::new(),
        })
    }

    /// A `member.kick`: announced to the remaining members and the kicked identity, whose
    /// unread counter goes.
    pub fn kicked(&mut self, kick: EventRow) {
        let mut recipients = self.members.clone();
        recipients.push(kick.sender_id);
        self.departed.push(kick.sender_id);
        self.announced.push(Announced { event: kick, recipients });
    }

    /// `who` stopped being a member: its unread counter goes.
    pub(super) fn departed(&mut self, who: IdentityId) {
        self.departed.push(who);
    }

    /// Stores the notifications, in the transaction of the change that causes them.
    pub async fn store<C: GenericClient>(
        &mut self,
        c: &C,
        retention: store::notifications::Retention,
    ) -> ApiResult<()> {
        self.stored = store::notifications::insert_all(c, retention, &self.notifications).await?;
        Ok(())
    }

    /// The announced events, to load their context with.
    pub fn events(&self) -> impl Iterator<Item = &EventRow> {
        self.announced.iter().map(|a| &a.event)
    }

    /// `event.new` to each announced event's recipients, unread counters, notifications, and
    /// the counters of departed members reset.
    pub fn fill(&self, outbox: &mut Outbox, ctx: &EventContext, bx: &BoxRow) {
        for a in &self.announced {
            load::announce(outbox, |t| ctx.render(&a.event, t), bx.creator_id, &a.recipients);
            if counts(a.event.kind) {
                for m in self.members.iter().filter(|m| **m != a.event.sender_id && !self.muted.contains(m)) {
                    outbox.increment(*m, bx.id);
                }
            }
        }
        outbox.notify(&self.stored);
        for who in &self.departed {
            outbox.reset(*who, bx.id);
        }
    }
}
