//! stud-core's public API, named item by item: removing or renaming anything here, or changing
//! a signature pinned below, fails to compile. A breaking change is then a deliberate edit of
//! this file (and a version bump), never an accident. Additions go here too.

#![expect(
    clippy::type_complexity,
    reason = "the pinned signatures are spelled out on purpose"
)]

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

// Every item at the crate root.
use stud_core::{
    certificate_not_after, cipher_suite_names, random_ticket_secret, rustls, Action, BackendTls,
    Buffered, ClientAddressMode, ClientVerify, ClientVerifyMode, CloseReason, Config,
    ConfigBuilder, ConfigError, Conn, Event, HandshakeInfo, Instant, Interest, TlsError,
    TlsVersion, MAX_RECORD_PLAINTEXT, SYSTEM_CA_BUNDLE,
};
// The fuzz targets' entry points: hidden from the docs and outside the API's promise, named
// here so that the fuzz targets' needs are seen to change.
use stud_core::internal::proxy::{
    encode_client_address, encode_proxy_v2, parse_proxy_header, ProxyHeaderParse, AF_INET6_LINUX,
    AF_INET_LINUX, MAX_HEADER_LEN, MAX_INCOMING_PROXY_HEADER, PROXY_V2_SIGNATURE,
};

// Every item of the reference driver.
#[cfg(feature = "driver")]
use stud_core::driver::{
    BackendAddr, ConnStats, Frontend, InvalidBackendAddr, Observer, Options, RateLimit, RawFd,
    Server, StopHandle,
};

#[test]
fn the_engine_contract_keeps_its_signatures() {
    let _: fn(Arc<Config>, Instant, SocketAddr, SocketAddr) -> Result<Conn, TlsError> = Conn::new;
    let _: fn(&Conn) -> SocketAddr = Conn::peer_addr;
    let _: fn(&Conn) -> SocketAddr = Conn::local_addr;
    let _: fn(&Conn) -> bool = Conn::is_handshaking;
    let _: fn(&Conn) -> bool = Conn::is_closed;
    // Inputs.
    let _: fn(&Conn) -> usize = Conn::client_read_capacity;
    let _: fn(&mut Conn, Instant, &[u8]) -> usize = Conn::handle_client_data;
    let _: fn(&mut Conn, Instant, &mut [u8]) -> usize = Conn::handle_client_data_mut;
    let _: fn(&mut Conn, Instant) = Conn::handle_client_eof;
    let _: fn(&mut Conn, Instant) = Conn::handle_client_reset;
    let _: fn(&mut Conn, Instant) = Conn::handle_backend_connected;
    let _: fn(&mut Conn, Instant) = Conn::handle_backend_connect_failed;
    let _: fn(&Conn) -> usize = Conn::backend_read_capacity;
    let _: fn(&mut Conn, Instant, &[u8]) -> usize = Conn::handle_backend_data;
    let _: fn(&mut Conn, Instant, &mut [u8]) -> usize = Conn::handle_backend_data_mut;
    let _: fn(&mut Conn, Instant) = Conn::handle_backend_eof;
    let _: fn(&mut Conn, Instant) = Conn::handle_backend_reset;
    let _: fn(&mut Conn, Instant) = Conn::abort;
    let _: fn(&mut Conn, Instant) = Conn::handle_timeout;
    // Outputs.
    let _: fn(&Conn) -> Option<Instant> = Conn::poll_timeout;
    let _: fn(&mut Conn) -> Option<Event> = Conn::poll_event;
    let _: fn(&mut Conn) -> Option<Action> = Conn::poll_action;
    let _: fn(&Conn) -> Interest = Conn::interest;
    let _: fn(&Conn) -> Buffered = Conn::buffered;
    let _: fn(&mut Conn, Instant, &mut [u8]) -> usize = Conn::poll_client_transmit;
    let _: fn(&mut Conn, Instant, &mut dyn io::Write) -> io::Result<usize> = Conn::write_client;
    let _: fn(&mut Conn, Instant, &mut [u8]) -> usize = Conn::poll_backend_transmit;
    let _: fn(&mut Conn, Instant, &mut dyn io::Write) -> io::Result<usize> = Conn::write_backend;
}

#[test]
fn the_outputs_keep_their_variants_and_fields() {
    let _ = [
        Action::ConnectBackend,
        Action::ShutdownBackendWrite,
        Action::ShutdownClientWrite,
        Action::Close(CloseReason::Completed),
    ];
    let _ = |e: Event| match e {
        Event::HandshakeComplete(info) => info,
        _ => HandshakeInfo::new(TlsVersion::Tls13, "TLS_AES_128_GCM_SHA256"),
    };
    let Interest {
        client_read: _,
        client_write: _,
        backend_read: _,
        backend_write: _,
    } = Interest::default();
    let Buffered {
        to_backend: _,
        to_client: _,
    } = Buffered::default();
    let info = HandshakeInfo::new(TlsVersion::Tls12, "ECDHE-RSA-AES128-GCM-SHA256");
    let _: (
        &Option<String>,
        &Option<Vec<u8>>,
        &TlsVersion,
        &&'static str,
        &bool,
        &Vec<Vec<u8>>,
        &Option<ClientVerify>,
    ) = (
        &info.sni,
        &info.alpn,
        &info.version,
        &info.cipher_suite,
        &info.resumed,
        &info.peer_certificates,
        &info.client_verify,
    );
    let _: fn(&HandshakeInfo) -> Option<&str> = HandshakeInfo::client_common_name;
    let _: fn() -> Vec<&'static str> = cipher_suite_names;
    let _: fn(TlsVersion) -> &'static str = TlsVersion::as_str;
    let _ = [
        CloseReason::Completed,
        CloseReason::HandshakeTimeout,
        CloseReason::ClientClosedInHandshake,
        CloseReason::BackendConnectFailed,
        CloseReason::BackendConnectTimeout,
        CloseReason::IdleTimeout,
        CloseReason::LingerTimeout,
        CloseReason::ClientReset,
        CloseReason::BackendReset,
        CloseReason::Aborted,
        CloseReason::BadProxyHeader("why"),
    ];
    let _: fn(TlsError) -> [CloseReason; 2] = |e| {
        [
            CloseReason::HandshakeFailed(e.clone()),
            CloseReason::ProtocolError(e),
        ]
    };
    let _: fn(&CloseReason) -> &'static str = CloseReason::as_str;
    let _: fn(&CloseReason) -> bool = CloseReason::is_handshake_failure;
    let _: &[&str] = CloseReason::NAMES;
}

#[test]
fn time_keeps_its_conversions() {
    let _: Instant = Instant::ZERO;
    let _: fn(u64) -> Instant = Instant::from_micros;
    let _: fn(Instant) -> u64 = Instant::as_micros;
    let _: fn(std::time::Instant, std::time::Instant) -> Instant = Instant::from_std;
    let _: fn(Instant, std::time::Instant) -> Option<std::time::Instant> = Instant::to_std;
    let _: fn(Instant, Instant) -> Duration = Instant::saturating_duration_since;
    let _: Instant = Instant::ZERO + Duration::ZERO;
    let _: Duration = Instant::ZERO - Instant::ZERO;
}

#[test]
fn configuration_keeps_its_builder_and_accessors() {
    let _: fn() -> ConfigBuilder = Config::builder;
    let _: fn(ConfigBuilder) -> Result<Config, ConfigError> = ConfigBuilder::build;
    // Setters, by name and argument shape (never run).
    let _ = |b: ConfigBuilder, tls: Arc<rustls::ServerConfig>| {
        b.pem_file("p")
            .pem("p")
            .cert_and_key_files("c", "k")
            .cert_and_key_pem("c", "k")
            .ocsp_response(Vec::new())
            .ocsp_response_file("o")
            .versions(&[TlsVersion::Tls12])
            .ciphers("DEFAULT")
            .sni_strict(true)
            .prefer_server_ciphers(true)
            .alpn_protocols(vec![b"h2".to_vec()])
            .session_tickets(true)
            .ticket_secret(vec![0; 32])
            .ticket_secret_file("t")
            .handshake_timeout(Duration::ZERO)
            .backend_connect_timeout(Duration::ZERO)
            .idle_timeout(None)
            .linger_timeout(Duration::ZERO)
            .to_backend_budget(0)
            .to_client_budget(0)
            .client_address(ClientAddressMode::None)
            .accept_proxy_header(false)
            .client_verify(ClientVerifyMode::None)
            .client_verify_ca_file("ca")
            .client_verify_ca_pem("ca")
            .crl_file("crl")
            .crl("crl")
            .client_verify_depth(0)
            .proxy_client_cert(false)
            .rustls_server_config(tls)
    };
    let _: fn(&Config) -> &[String] = Config::warnings;
    let _: fn(&Config) -> ClientAddressMode = Config::client_address;
    let _: fn(&Config) -> bool = Config::accept_proxy_header;
    let _: fn(&Config) -> Duration = Config::handshake_timeout;
    let _: fn(&Config) -> Duration = Config::backend_connect_timeout;
    let _: fn(&Config) -> Option<Duration> = Config::idle_timeout;
    let _: fn(&Config) -> Duration = Config::linger_timeout;
    let _: fn(&Config) -> usize = Config::to_backend_budget;
    let _: fn(&Config) -> usize = Config::to_client_budget;
    let _: fn(&Config) -> ClientVerifyMode = Config::client_verify;
    let _: fn(&Config) -> bool = Config::proxy_client_cert;
    let _: fn(&Config) -> bool = Config::client_mode;
    // Client mode: the backend's TLS.
    let _: fn(ConfigBuilder, BackendTls) -> ConfigBuilder = ConfigBuilder::client_mode;
    let _client_mode = || {
        BackendTls::new("backend.example")
            .ca_file("ca")
            .ca_pem("ca")
            .insecure(false)
            .client_cert_file("pem")
            .client_cert_pem("pem")
            .resumption(true)
    };
    let _: fn(&BackendTls) -> &str = BackendTls::server_name;
    let _: &str = SYSTEM_CA_BUNDLE;
    let _: fn(&[u8]) -> Option<i64> = certificate_not_after;
    let _: fn() -> Option<Vec<u8>> = random_ticket_secret;
    let _: [Duration; 3] = [
        ConfigBuilder::DEFAULT_HANDSHAKE_TIMEOUT,
        ConfigBuilder::DEFAULT_BACKEND_CONNECT_TIMEOUT,
        ConfigBuilder::DEFAULT_LINGER_TIMEOUT,
    ];
    let _: usize = MAX_RECORD_PLAINTEXT;
    let _ = ConfigError::ConflictsWithRustlsConfig { setting: "pem" };
    let _ = ConfigError::NoIdentity;
}

#[test]
fn the_header_codecs_keep_their_signatures() {
    let _: fn(
        ClientAddressMode,
        SocketAddr,
        SocketAddr,
        Option<&HandshakeInfo>,
        &mut [u8; MAX_HEADER_LEN],
    ) -> usize = encode_client_address;
    let _: fn(SocketAddr, SocketAddr, Option<&HandshakeInfo>, &mut [u8; MAX_HEADER_LEN]) -> usize =
        encode_proxy_v2;
    let _: fn(&[u8]) -> ProxyHeaderParse = parse_proxy_header;
    let _: fn(ClientAddressMode) -> bool = ClientAddressMode::names_the_session;
    let _ = [
        ClientAddressMode::None,
        ClientAddressMode::WriteIp,
        ClientAddressMode::ProxyV1,
        ClientAddressMode::ProxyV2,
    ];
    let _ = [
        ClientVerifyMode::None,
        ClientVerifyMode::Optional,
        ClientVerifyMode::Required,
    ];
    let _ = [ClientVerify::Verified, ClientVerify::NoCertificate];
    let _: (u8, u8, usize, [u8; 12]) = (
        AF_INET_LINUX,
        AF_INET6_LINUX,
        MAX_INCOMING_PROXY_HEADER,
        PROXY_V2_SIGNATURE,
    );
}

#[cfg(feature = "driver")]
#[test]
fn the_driver_keeps_its_entry_points() {
    use std::net::TcpListener;
    let _: fn(Arc<Config>, Vec<TcpListener>, Options) -> io::Result<Server> = Server::new;
    let _: fn(Arc<Config>, SocketAddr, Options) -> io::Result<Server> = Server::bind;
    let _: fn(Vec<Frontend>, Options) -> io::Result<Server> = Server::with_frontends;
    let _: fn(&mut Server, Box<dyn Observer>) = Server::set_observer;
    let _: fn(&Server) -> Vec<SocketAddr> = Server::local_addrs;
    let _: fn(&Server) -> StopHandle = Server::stop_handle;
    let _: fn(&Server) -> usize = Server::connection_count;
    let _: fn(&mut Server) -> io::Result<()> = Server::run;
    let _: fn(&StopHandle) = StopHandle::stop;
    let _: fn(&StopHandle) = StopHandle::stop_now;
    let _: fn(&StopHandle) -> RawFd = StopHandle::raw_fd;
    let _: fn(u32, Duration) -> RateLimit = RateLimit::new;
    let _: fn(&mut RateLimit, Instant) -> Option<u64> = RateLimit::admit;
    let _: fn(&mut RateLimit) -> u64 = RateLimit::take_suppressed;
    let _: fn(TcpListener, Arc<Config>) -> Frontend = Frontend::new;
    let _: fn(SocketAddr, Arc<Config>) -> io::Result<Frontend> = Frontend::bind;
    let _: fn(&Frontend) -> io::Result<SocketAddr> = Frontend::local_addr;
    let _: fn(&Frontend) -> &Arc<Config> = Frontend::config;
    let _: fn(&Options) -> io::Result<()> = Options::validate;
    let _ = |b: BackendAddr| {
        Options::new([b])
            .with_source_addrs(Vec::new())
            .with_keepalive(None)
            .with_accept_batch(1)
            .with_drain_timeout(Duration::ZERO)
            .with_max_connections(None)
            .with_scratch_size(1)
            .with_heartbeat(None)
            .with_defer_accept(None)
    };
    let stats = ConnStats::default();
    let _: (u64, u64, Duration, u64, u64) = (
        stats.bytes_from_client,
        stats.bytes_to_client,
        stats.duration,
        stats.bytes_from_backend,
        stats.bytes_to_backend,
    );
    let _: Option<&InvalidBackendAddr> = None;
}
