//! A real nginx upstream over TLS, optionally requiring a client
//! certificate (`ssl_verify_client on`), on a loopback port.

use crate::pki::Pki;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

pub struct Nginx {
    _process: crate::Process,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

pub struct NginxOptions {
    /// Name on nginx's certificate (the node's internal name).
    pub name: String,
    pub require_client_cert: bool,
    /// Offer HTTP/2 (ALPN) besides HTTP/1.1.
    pub http2: bool,
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The 3 MB file nginx serves at `/finesse/api/big.bin`, to stream through.
pub fn big_file() -> Vec<u8> {
    (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect()
}

impl Nginx {
    /// Starts nginx; `None` when nginx is not installed and skipping is allowed.
    pub async fn start(pki: &Pki, opts: NginxOptions) -> Option<Nginx> {
        let bin = crate::require("nginx")?;
        let dir = pki.path().join(format!("nginx-{}", crate::free_port()));
        std::fs::create_dir_all(dir.join("www/finesse/api")).expect("mkdir");
        std::fs::create_dir_all(dir.join("tmp")).expect("mkdir");
        std::fs::write(dir.join("www/finesse/api/big.bin"), big_file()).expect("big file");
        std::fs::write(
            dir.join("www/finesse/api/SystemInfo"),
            "<SystemInfo><status>IN_SERVICE</status></SystemInfo>",
        )
        .expect("file");
        let cert = pki.server("nginx", &[&opts.name]);
        let verify = if opts.require_client_cert {
            format!(
                "ssl_client_certificate {}; ssl_verify_client on;",
                pki.ca_path.display()
            )
        } else {
            String::new()
        };
        let user = if running_as_root() { "user root;" } else { "" };
        for _attempt in 0..5 {
            let port = crate::free_port();
            let conf = format!(
                r#"
{user}
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port} ssl{h2};
        server_name {name};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        {verify}
        location /desktop/ {{
            default_type text/plain;
            return 200 "host=$http_host\nxff=$http_x_forwarded_for\nxci=$http_x_client_ip\nxrip=$http_x_real_ip\nuri=$request_uri\nproto=$http_x_forwarded_proto\nport=$http_x_forwarded_port\nremote=$remote_addr\nconnection=$http_connection\nsecret=$http_x_secret\nsproto=$server_protocol\nconn=$connection\nupgrade=$http_upgrade\n";
        }}
        location /finesse/ {{
            root {dir}/www;
            default_type application/xml;
        }}
    }}
}}
"#,
                dir = dir.display(),
                name = opts.name,
                h2 = if opts.http2 { " http2" } else { "" },
                cert = cert.cert.display(),
                key = cert.key.display(),
            );
            let conf_path = dir.join("nginx.conf");
            std::fs::write(&conf_path, conf).expect("conf");
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
            let mut cmd = Command::new(&bin);
            cmd.arg("-c")
                .arg(&conf_path)
                .arg("-p")
                .arg(&dir)
                .arg("-e")
                .arg(dir.join("error.log"));
            if let Some(process) = crate::spawn_listening(&mut cmd, addr).await {
                return Some(Nginx {
                    _process: process,
                    addr,
                    dir,
                });
            }
        }
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        panic!("nginx did not start: {log}");
    }
}
