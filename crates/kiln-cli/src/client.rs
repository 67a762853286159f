//! A small signed client for Kiln's own APIs, used by `kiln image import/export`: EC2 Query
//! calls and EBS direct API calls, SigV4-signed like any AWS SDK would.

use std::io::Read;

use anyhow::{anyhow, bail, Context};
use kiln_ec2::sigv4::{self, HttpRequest};

/// Where and as whom to call.
pub struct Client {
    endpoint: String,
    host: String,
    region: String,
    access_key: String,
    secret: String,
    agent: ureq::Agent,
}

/// A response: status, headers we care about, body.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `(lowercase name, value)` pairs.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl Client {
    /// A client for `endpoint` (`http://host:port`) with explicit credentials.
    pub fn new(endpoint: &str, region: &str, access_key: &str, secret: &str) -> anyhow::Result<Client> {
        let host = endpoint
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("endpoint {endpoint} must start with http://"))?
            .trim_end_matches('/')
            .to_string();
        Ok(Client {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            host,
            region: region.to_string(),
            access_key: access_key.to_string(),
            secret: secret.to_string(),
            agent: ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(300)).build(),
        })
    }

    fn send(
        &self,
        service: &str,
        method: &str,
        path: &str,
        query: &str,
        extra_headers: &[(&str, String)],
        body: &[u8],
    ) -> anyhow::Result<Reply> {
        let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let mut headers: Vec<(String, String)> =
            vec![("host".into(), self.host.clone()), ("x-amz-date".into(), amz_date.clone())];
        for (k, v) in extra_headers {
            headers.push((k.to_ascii_lowercase(), v.clone()));
        }
        let signed: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
        let req = HttpRequest { method, path, query, headers: &headers, body };
        let auth = sigv4::sign_header(&req, &self.access_key, &self.secret, &amz_date, &self.region, service, &signed);
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query}", self.endpoint)
        };
        let mut r = self.agent.request(method, &url).set("Authorization", &auth);
        for (k, v) in &headers {
            if k != "host" {
                r = r.set(k, v);
            }
        }
        let resp = match r.send_bytes(body) {
            Ok(resp) => resp,
            Err(ureq::Error::Status(_, resp)) => resp,
            Err(e) => return Err(anyhow!("calling {url}: {e}")),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .filter_map(|n| resp.header(&n).map(|v| (n.to_ascii_lowercase(), v.to_string())))
            .collect();
        let mut body = Vec::new();
        resp.into_reader().take(64 << 20).read_to_end(&mut body).context("reading the response")?;
        Ok(Reply { status, headers, body })
    }

    /// One EC2 Query action; returns the response document, or the EC2 error as an error.
    pub fn ec2(&self, action: &str, params: &[(&str, String)]) -> anyhow::Result<String> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action).append_pair("Version", "2016-11-15");
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let body = form.finish();
        let reply = self.send(
            "ec2",
            "POST",
            "/",
            "",
            &[("content-type", "application/x-www-form-urlencoded; charset=utf-8".into())],
            body.as_bytes(),
        )?;
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        if reply.status != 200 {
            bail!(
                "{action} failed: {}: {}",
                crate::xml::text_of(&text, "Code").unwrap_or_else(|| reply.status.to_string()),
                crate::xml::text_of(&text, "Message").unwrap_or_default()
            );
        }
        Ok(text)
    }

    /// One EBS direct API call; non-2xx replies become errors carrying the service's message.
    pub fn ebs(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> anyhow::Result<Reply> {
        let reply = self.send("ebs", method, path, query, headers, body)?;
        if !(200..300).contains(&reply.status) {
            let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
            bail!(
                "{method} {path} failed: {}: {}",
                reply.header("x-amzn-errortype").unwrap_or("error"),
                v["Message"].as_str().unwrap_or("")
            );
        }
        Ok(reply)
    }
}
