namespace RetriBooru.Runtime;

/// <summary>
/// IProgress that runs the callback on the reporting thread. Progress&lt;T&gt; posts to the thread pool, which
/// reorders log lines and chart points; every front end (CLI, notebooks, runner) uses this one instead.
/// </summary>
public sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
