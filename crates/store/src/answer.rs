//! Typed answers out of the store: a caller names the answer type its command
//! gives ([`lockstep_core::command::Answer`]) and gets it, or an internal
//! error. This is the one place where an answer of the wrong type (a bug) is
//! turned into an error.

use crate::{Committed, Completion, Error, Store};
use lockstep_core::command::Answer;
use lockstep_core::{Command, Outcome};

/// A typed answer and the revision its command committed at (the current
/// revision when it wrote nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct Answered<A> {
    /// The answer.
    pub answer: A,
    /// The revision.
    pub revision: u64,
}

/// `outcome` as the answer type `A`; another command's answer is an internal error.
pub fn typed<A: Answer>(outcome: Outcome) -> Result<A, Error> {
    A::try_from(outcome).map_err(|other| {
        Error::Internal(format!(
            "expected the answer {}, the command answered {other:?}",
            std::any::type_name::<A>()
        ))
    })
}

impl Committed {
    /// The answer as its type `A`.
    pub fn answer<A: Answer>(&self) -> Result<A, Error> {
        typed(self.outcome.clone())
    }

    /// The answer as its type `A`, with the revision.
    pub fn into_answered<A: Answer>(self) -> Result<Answered<A>, Error> {
        Ok(Answered {
            answer: typed(self.outcome)?,
            revision: self.revision,
        })
    }
}

impl Store {
    /// [`Store::execute`], answering the command's typed answer `A`.
    pub async fn execute_as<A: Answer>(
        &self,
        ns: &str,
        cmd: Command,
        actor: &str,
    ) -> Result<Answered<A>, Error> {
        self.execute(ns, cmd, actor).await?.into_answered()
    }

    /// [`Store::execute_completing`], answering the command's typed answer `A`.
    /// (A keyed request's replay is answered by the store as `Began`: callers
    /// that use a completion with `begin` read the [`Committed`] themselves.)
    pub async fn execute_completing_as<A: Answer>(
        &self,
        ns: &str,
        cmd: Command,
        actor: &str,
        completion: Option<Completion>,
    ) -> Result<Answered<A>, Error> {
        self.execute_completing(ns, cmd, actor, completion)
            .await?
            .into_answered()
    }
}
