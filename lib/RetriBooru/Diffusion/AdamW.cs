using TorchSharp.Modules;
using static TorchSharp.torch;
using RetriBooru.Runtime;

namespace RetriBooru.Diffusion;

/// <summary>
/// AdamW (decoupled weight decay, Loshchilov and Hutter), written out so its whole state (step count, first
/// and second moments per named parameter) is plain tensors that checkpoint to safetensors and restore bit-exactly.
/// Same update as torch.optim.AdamW: p -= lr wd p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
/// p -= lr/(1-b1^k) m / (sqrt(v)/sqrt(1-b2^k) + eps).
/// </summary>
public sealed class AdamW : IDisposable
{
    readonly IReadOnlyList<KeyValuePair<string, Parameter>> parameters;
    readonly Dictionary<string, Tensor> expAvg = new(StringComparer.Ordinal);
    readonly Dictionary<string, Tensor> expAvgSq = new(StringComparer.Ordinal);

    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Eps { get; init; } = 1e-8;
    public double WeightDecay { get; init; } = 1e-2;
    /// <summary>Per-parameter learning-rate multiplier by name (torch's parameter groups); null = 1 for all.</summary>
    public Func<string, double>? LearningRateScale { get; init; }
    public long StepCount { get; private set; }

    public AdamW(IReadOnlyList<KeyValuePair<string, Parameter>> parameters)
    {
        this.parameters = parameters;
        foreach (var (name, p) in parameters)
        {
            expAvg[name] = zeros_like(p).DetachFromDisposeScope();
            expAvgSq[name] = zeros_like(p).DetachFromDisposeScope();
        }
    }

    public void Step(double learningRate)
    {
        StepCount++;
        double bc1 = 1 - Math.Pow(Beta1, StepCount), bc2 = 1 - Math.Pow(Beta2, StepCount);
        using var noGrad = no_grad();
        foreach (var (name, p) in parameters)
        {
            using var scope = NewDisposeScope();
            var g = p.grad;
            if (g is null) continue;
            double lr = LearningRateScale is null ? learningRate : learningRate * LearningRateScale(name);
            p.ScaleInPlace(1 - lr * WeightDecay);
            expAvg[name].ScaleInPlace(Beta1).AddScaledInPlace(g, 1 - Beta1);
            expAvgSq[name].ScaleInPlace(Beta2).AddProductInPlace(g, g, 1 - Beta2);
            var denom = expAvgSq[name].sqrt().Over(Math.Sqrt(bc2)).PlusInPlace(Eps);
            p.AddQuotientInPlace(expAvg[name], denom, -lr / bc1);
        }
    }

    public void ZeroGrad()
    {
        foreach (var (_, p) in parameters)
        {
            using var g = p.grad;
            g?.zero_();
        }
    }

    /// <summary>State as named tensors: <c>exp_avg.NAME</c>, <c>exp_avg_sq.NAME</c>, and <c>step</c>.</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> State()
    {
        yield return new("step", tensor(new[] { StepCount }));
        foreach (var (name, t) in expAvg) yield return new("exp_avg." + name, t);
        foreach (var (name, t) in expAvgSq) yield return new("exp_avg_sq." + name, t);
    }

    public void LoadState(IReadOnlyDictionary<string, Tensor> state, string source)
    {
        if (!state.TryGetValue("step", out var step)) throw new InvalidDataException($"{source}: optimizer state has no 'step'");
        using (no_grad())
            foreach (var (prefix, table) in new[] { ("exp_avg.", expAvg), ("exp_avg_sq.", expAvgSq) })
                foreach (var (name, t) in table)
                {
                    if (!state.TryGetValue(prefix + name, out var saved)) throw new InvalidDataException($"{source}: optimizer state lacks '{prefix + name}'");
                    if (!saved.shape.SequenceEqual(t.shape)) throw new InvalidDataException($"{source}: optimizer state '{prefix + name}' has shape [{string.Join(", ", saved.shape)}], expected [{string.Join(", ", t.shape)}]");
                    t.copy_(saved);
                }
        StepCount = step.item<long>();
    }

    public void Dispose()
    {
        foreach (var t in expAvg.Values.Concat(expAvgSq.Values)) t.Dispose();
    }
}

/// <summary>Exponential moving average of named parameters: shadow = decay shadow + (1 - decay) param.</summary>
public sealed class ExponentialMovingAverage : IDisposable
{
    readonly IReadOnlyList<KeyValuePair<string, Parameter>> parameters;
    readonly Dictionary<string, Tensor> shadow = new(StringComparer.Ordinal);

    public double Decay { get; }

    public ExponentialMovingAverage(IReadOnlyList<KeyValuePair<string, Parameter>> parameters, double decay)
    {
        if (decay is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(decay), decay, "EMA decay must be in (0, 1)");
        this.parameters = parameters;
        Decay = decay;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope(); // holds the detached views until clone has returned
        foreach (var (name, p) in parameters) shadow[name] = p.detach().clone().DetachFromDisposeScope();
    }

    /// <summary>
    /// The decay used after training step <paramref name="step"/> (0-based): min(decay, (1 + step) / (10 + step)).
    /// The warm-up keeps the average from holding on to the initial weights: without it, 0.999 over a 2000-step run
    /// leaves 0.999^2000 = 13.5% of the random initialisation in the exported model.
    /// </summary>
    public static double EffectiveDecay(double decay, long step) => Math.Min(decay, (1.0 + step) / (10.0 + step));

    public void Update(long step)
    {
        double decay = EffectiveDecay(Decay, step);
        using var noGrad = no_grad();
        foreach (var (name, p) in parameters) shadow[name].ScaleInPlace(decay).AddScaledInPlace(p, 1 - decay);
    }

    public IReadOnlyDictionary<string, Tensor> Shadow => shadow;

    public void LoadState(IReadOnlyDictionary<string, Tensor> state, string source)
    {
        using var noGrad = no_grad();
        foreach (var (name, t) in shadow)
        {
            if (!state.TryGetValue(name, out var saved)) throw new InvalidDataException($"{source}: EMA state lacks '{name}'");
            t.copy_(saved);
        }
    }

    /// <summary>Copies the averaged weights into the live parameters (for export).</summary>
    public void CopyTo()
    {
        using var noGrad = no_grad();
        foreach (var (name, p) in parameters) p.copy_(shadow[name]);
    }

    public void Dispose()
    {
        foreach (var t in shadow.Values) t.Dispose();
    }
}
