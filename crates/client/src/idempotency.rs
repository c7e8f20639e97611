//! The application's idempotency store (SPEC §9).

use crate::http::{seg, Req};
use crate::{Error, Ns};
use lockstep_api::idempotency::{
    BeginBody, Begun, CompleteBody, GiveUpBody, IdempotencyCompleted, IdempotencyGivenUp, IdempotencyKey,
};
use reqwest::Method;
use serde_json::Value;

impl Ns {
    fn idem_path(&self, scope: &str, key: &str) -> String {
        self.at(&format!("idempotency/{}/{}", seg(scope), seg(key)))
    }

    /// Owns `key` for the app's own endpoint (`Begun::Started` with a token),
    /// or gets its stored response (`Begun::Completed`). A key in use by
    /// another owner is retried while the retry policy allows.
    ///
    /// ```no_run
    /// use lockstep_client::api::idempotency::{BeginBody, Begun};
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let body = BeginBody { fingerprint: "charge:42".into(), lock_ms: 30_000 };
    /// match app.begin_idempotent("charges", "order-42", &body).await? {
    ///     Begun::Started(s) => { app.complete_idempotent("charges", "order-42", &s.token, &serde_json::json!({"ok": true})).await?; }
    ///     Begun::Completed(r) => println!("replay {}", r.response),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn begin_idempotent(&self, scope: &str, key: &str, body: &BeginBody) -> Result<Begun, Error> {
        let req = Req::write(Method::POST, self.idem_path(scope, key)).json(body)?;
        Ok(self.t().send(&req).await?.body)
    }

    /// A key's state (never its owner's token).
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let k = app.idempotency_key("charges", "order-42").await?;
    /// # Ok(()) }
    /// ```
    pub async fn idempotency_key(&self, scope: &str, key: &str) -> Result<IdempotencyKey, Error> {
        Ok(self.t().send(&Req::get(self.idem_path(scope, key))).await?.body)
    }

    /// Stores the response of an owned key.
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns, token: String) -> Result<(), lockstep_client::Error> {
    /// app.complete_idempotent("charges", "order-42", &token, &serde_json::json!({"ok": true})).await?;
    /// # Ok(()) }
    /// ```
    pub async fn complete_idempotent(
        &self,
        scope: &str,
        key: &str,
        token: &str,
        response: &Value,
    ) -> Result<IdempotencyCompleted, Error> {
        let body = CompleteBody {
            token: token.to_owned(),
            response: response.clone(),
        };
        let req = Req::write(Method::PUT, self.idem_path(scope, key)).json(&body)?;
        Ok(self.t().send(&req).await?.body)
    }

    /// Gives an owned key up so that a retry may run.
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns, token: String) -> Result<(), lockstep_client::Error> {
    /// app.give_up_idempotent("charges", "order-42", &token).await?;
    /// # Ok(()) }
    /// ```
    pub async fn give_up_idempotent(
        &self,
        scope: &str,
        key: &str,
        token: &str,
    ) -> Result<IdempotencyGivenUp, Error> {
        let body = GiveUpBody {
            token: token.to_owned(),
        };
        let req = Req::write(Method::DELETE, self.idem_path(scope, key)).json(&body)?;
        Ok(self.t().send(&req).await?.body)
    }
}
