//! Where an agent's webhook events may go: the operator's allowlist (PROXY_WEBHOOK_URLS) and
//! the URL of every agent that names none (PROXY_WEBHOOK_URL). A request's `webhook` outside
//! the allowlist is refused before anything spawns, so a client cannot make the proxy call an
//! address of its choosing.

use std::sync::Arc;

use url::Url;

use crate::agent::error::Error;

/// The operator's webhook settings, checked at start-up.
#[derive(Debug, Clone, Default)]
pub struct WebhookPolicy {
    /// Exact URLs, and prefixes (an entry that ends with `/` allows every URL below it), each
    /// normalized as [`normalized`] makes them.
    allowed: Vec<String>,
    /// Every agent's URL when its request names none.
    default_url: Option<Arc<str>>,
}

impl WebhookPolicy {
    /// From PROXY_WEBHOOK_URLS's entries and PROXY_WEBHOOK_URL: an entry that is not an
    /// http(s) URL is an error that names it.
    pub fn new(allowed: &[String], default_url: Option<&str>) -> Result<Self, String> {
        let allowed = allowed
            .iter()
            .map(|entry| normalized(entry).map_err(|why| format!("{entry}: {why}")))
            .collect::<Result<Vec<_>, _>>()?;
        let default_url = default_url
            .map(|url| normalized(url).map_err(|why| format!("{url}: {why}")))
            .transpose()?
            .map(Arc::from);
        Ok(Self {
            allowed,
            default_url,
        })
    }

    /// Webhooks are on: the operator allowed some URL, or set one for all.
    pub fn enabled(&self) -> bool {
        !self.allowed.is_empty() || self.default_url.is_some()
    }

    /// The URL an agent's events go to: the request's, if the allowlist has it, else the
    /// operator's for all (None: the agent has no webhook).
    pub fn target(&self, asked: Option<&str>) -> Result<Option<Arc<str>>, Error> {
        let Some(asked) = asked else {
            return Ok(self.default_url.clone());
        };
        if !self.enabled() {
            return Err(Error::Forbidden(
                "webhook: this proxy sends no webhooks (the operator sets PROXY_WEBHOOK_URLS)"
                    .into(),
            ));
        }
        let url = normalized(asked).map_err(|why| Error::invalid("webhook", why))?;
        let allowed = self.default_url.as_deref() == Some(url.as_str())
            || self.allowed.iter().any(|entry| match entry.ends_with('/') {
                true => url.starts_with(entry.as_str()),
                false => url == *entry,
            });
        if !allowed {
            return Err(Error::Forbidden(format!(
                "webhook: {url} is not among the URLs the operator allows (PROXY_WEBHOOK_URLS)"
            )));
        }
        Ok(Some(Arc::from(url)))
    }
}

/// An http(s) URL as it will be called: parsed, so `..`, case and default ports are resolved
/// before it is compared; no user name or password, no fragment.
fn normalized(url: &str) -> Result<String, String> {
    let parsed = Url::parse(url.trim()).map_err(|err| format!("not a URL ({err})"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not hold a user name or password".into());
    }
    if parsed.fragment().is_some() {
        return Err("must not have a fragment (#...)".into());
    }
    Ok(parsed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str]) -> WebhookPolicy {
        let allowed: Vec<String> = allowed.iter().map(|s| (*s).to_owned()).collect();
        WebhookPolicy::new(&allowed, None).unwrap()
    }

    #[test]
    fn exact_urls_and_prefixes_that_end_a_path_segment() {
        let p = policy(&[
            "https://hooks.example.com/a",
            "https://ci.example.com/hooks/",
        ]);
        assert!(p.target(Some("https://hooks.example.com/a")).is_ok());
        assert!(p.target(Some("HTTPS://Hooks.Example.com:443/a")).is_ok());
        assert!(p.target(Some("https://hooks.example.com/a/b")).is_err());
        assert!(
            p.target(Some("https://ci.example.com/hooks/build/1"))
                .is_ok()
        );
        assert!(
            p.target(Some("https://ci.example.com/hooks/../admin"))
                .is_err()
        );
        assert!(p.target(Some("https://ci.example.com/hooksx")).is_err());
        assert!(
            p.target(Some("https://ci.example.com.evil.net/hooks/"))
                .is_err()
        );
        assert!(
            p.target(Some("https://u:p@ci.example.com/hooks/x"))
                .is_err()
        );
        assert!(p.target(Some("file:///etc/passwd")).is_err());
        assert_eq!(p.target(None).unwrap(), None);
    }

    #[test]
    fn the_operators_url_for_all_is_allowed_and_used_when_none_is_named() {
        let p = WebhookPolicy::new(&[], Some("http://127.0.0.1:9/hook")).unwrap();
        assert!(p.enabled());
        assert_eq!(
            p.target(None).unwrap().as_deref(),
            Some("http://127.0.0.1:9/hook")
        );
        assert!(p.target(Some("http://127.0.0.1:9/hook")).is_ok());
        assert!(p.target(Some("http://127.0.0.1:9/other")).is_err());
        assert!(WebhookPolicy::default().target(Some("http://x/")).is_err());
    }
}
