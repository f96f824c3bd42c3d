using System.Collections.Concurrent;
using static TorchSharp.torch;

namespace RetriBooru.Runtime;

/// <summary>
/// A long-lived thread that runs libtorch work with its own intra-op thread count. libtorch keeps the OpenMP thread
/// count per thread, and a new thread copies the process-wide value when it first asks for it; so the worker sets its
/// count and makes libtorch initialise it before anyone else may change the process-wide value again (<see cref="StartMany"/> restores
/// it). Used to split a training batch across cores: independent single-threaded streams scale where the tiny
/// model's small convolutions do not (measured: 2 threads inside one op gave 1.1x; 2 streams ~1.7x).
/// </summary>
public sealed class TorchWorker : IDisposable
{
    readonly BlockingCollection<Action> _queue = new();
    readonly Thread _thread;

    TorchWorker(string name, int intraOpThreads, CountdownEvent ready)
    {
        _thread = new Thread(() =>
        {
            set_num_threads(intraOpThreads);
            // get_num_threads runs libtorch's once-per-thread initialisation, which copies the process-wide count
            // (just set to ours); without it the first large op would copy whatever the caller restores later.
            ActualThreads = get_num_threads();
            ready.Signal();
            foreach (var work in _queue.GetConsumingEnumerable()) work();
        }) { IsBackground = true, Name = name };
        _thread.Start();
    }

    /// <summary>The intra-op thread count libtorch reports on this worker after start-up.</summary>
    public int ActualThreads { get; private set; }

    /// <summary>Starts <paramref name="count"/> workers with <paramref name="intraOpThreads"/> each and restores the caller's thread count.</summary>
    public static TorchWorker[] StartMany(int count, int intraOpThreads, string name)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "need at least one worker");
        if (intraOpThreads < 1) throw new ArgumentOutOfRangeException(nameof(intraOpThreads), intraOpThreads, "need at least one intra-op thread");
        TorchRuntime.EnsureLoaded();
        int callerThreads = get_num_threads();
        using var ready = new CountdownEvent(count);
        var workers = Enumerable.Range(0, count).Select(i => new TorchWorker($"{name}-{i}", intraOpThreads, ready)).ToArray();
        ready.Wait();
        set_num_threads(callerThreads);
        return workers;
    }

    /// <summary>Queues <paramref name="work"/>; the task completes with its result or its exception.</summary>
    public Task<T> Run<T>(Func<T> work)
    {
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _queue.Add(() =>
        {
            try { completion.SetResult(work()); }
            catch (Exception e) { completion.SetException(e); }
        });
        return completion.Task;
    }

    /// <summary>Contiguous [start, start + count) ranges covering <paramref name="count"/> items in at most <paramref name="parts"/> near-equal parts.</summary>
    public static IReadOnlyList<(int Start, int Count)> Split(int count, int parts)
    {
        var ranges = new List<(int, int)>();
        int start = 0;
        for (int i = 0; i < parts; i++)
        {
            int size = count / parts + (i < count % parts ? 1 : 0);
            if (size > 0) ranges.Add((start, size));
            start += size;
        }
        return ranges;
    }

    /// <summary>
    /// Splits <paramref name="count"/> items across the workers (<see cref="Split"/>), runs <paramref name="work"/>(start, count)
    /// for each part on its own worker and returns the results in part order. Waits for every part before returning or
    /// throwing, so no worker still uses the caller's inputs; on a failure the finished parts' results are released.
    /// </summary>
    public static List<T> RunSplit<T>(IReadOnlyList<TorchWorker> workers, int count, Func<int, int, T> work, Action<T>? release = null)
    {
        var ranges = Split(count, workers.Count);
        var pending = ranges.Select((range, i) => workers[i].Run(() => work(range.Start, range.Count))).ToList();
        Exception? failure = null;
        var results = new List<T>();
        foreach (var part in pending)
        {
            try { results.Add(part.GetAwaiter().GetResult()); }
            catch (Exception e) { failure ??= e; }
        }
        if (failure is null) return results;
        if (release is not null) foreach (var result in results) release(result);
        System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        throw failure; // unreachable: Throw() does not return
    }

    public void Dispose()
    {
        _queue.CompleteAdding();
        _thread.Join();
        _queue.Dispose();
    }
}

/// <summary>A set of <see cref="TorchWorker"/>s disposed together (empty when the work stays on the caller's thread).</summary>
public sealed class TorchWorkerPool : IDisposable
{
    public IReadOnlyList<TorchWorker> Workers { get; }

    /// <param name="count">Workers to start; below 2 none are (one part runs as well on the caller's thread).</param>
    public TorchWorkerPool(int count, string name) => Workers = count >= 2 ? TorchWorker.StartMany(count, intraOpThreads: 1, name) : [];

    public void Dispose()
    {
        foreach (var worker in Workers) worker.Dispose();
    }
}
