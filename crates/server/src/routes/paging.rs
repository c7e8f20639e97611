//! Opaque-cursor paging shared by every listing: a page is fetched one item
//! long to know whether another follows, and the cursor names the last item's
//! position within the listing's scope (SPEC §3).

use crate::{ApiError, AppState};
use lockstep_core::cursor;

/// One requested page of a listing.
pub struct Page {
    scope: String,
    /// Items per page.
    pub limit: usize,
    /// The position after which the page starts (decoded from the cursor).
    pub after: Option<String>,
}

impl Page {
    /// Validates `limit` and decodes `cursor` for the listing named by `scope`.
    pub fn new(
        st: &AppState,
        scope: String,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page, ApiError> {
        let limit = st.limits.page_size(limit)?;
        let after = cursor.map(|c| cursor::decode(c, &scope)).transpose()?;
        Ok(Page { scope, limit, after })
    }

    /// How many items to fetch: one more than the page, to see if another follows.
    pub fn fetch(&self) -> usize {
        self.limit + 1
    }

    /// Cuts a fetched list to the page and makes the next page's cursor (None on
    /// the last page) from the last item's position.
    pub fn cut<T>(&self, mut items: Vec<T>, position: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
        if items.len() <= self.limit {
            return (items, None);
        }
        items.truncate(self.limit);
        let next = items.last().map(|i| cursor::encode(&self.scope, &position(i)));
        (items, next)
    }
}
