namespace RetriBooru.Data;

/// <summary>Progress of a dataset stage (generate, scan, ingest, index, crops, manifest), reported through <see cref="IProgress{T}"/>.</summary>
public sealed record DatasetProgress(string Stage, int Done, int Total, string? Item = null)
{
    public double Fraction => Total <= 0 ? 1 : (double)Done / Total;
}

/// <summary>Thread-safe counter that reports a <see cref="DatasetProgress"/> every step of a parallel stage.</summary>
internal sealed class ProgressCounter(IProgress<DatasetProgress>? progress, string stage, int total)
{
    int _done;

    public void Start() => progress?.Report(new DatasetProgress(stage, 0, total));

    public void Step(string? item = null)
    {
        int done = Interlocked.Increment(ref _done);
        progress?.Report(new DatasetProgress(stage, done, total, item));
    }
}
