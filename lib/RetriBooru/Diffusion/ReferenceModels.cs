using System.Text.Json;
using System.Text.Json.Serialization;
using RetriBooru.Data;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using RetriBooru.Weights;
using TorchSharp;
using static TorchSharp.torch;
using RetriBooru.Settings;

namespace RetriBooru.Diffusion;

/// <summary>Which reference-conditioned model a checkpoint holds (branch.json).</summary>
public sealed record BranchInfo
{
    [JsonPropertyName("kind")] public required string Kind { get; init; }
    [JsonPropertyName("retrinet")] public RetriNetOptions? RetriNet { get; init; }
    [JsonPropertyName("ip_adapter_scale")] public double? IpAdapterScale { get; init; }
}

/// <summary>Builds the model families by name, around a base U-Net.</summary>
public static class ReferenceModels
{
    /// <param name="seed">Seeds the new layers' initial weights (private generators; the global RNG is not used).</param>
    public static IReferenceConditionedModel Create(ModelKind kind, DiffusionModel model, RetriNetOptions? retriNet = null, double ipAdapterScale = 1.0, long seed = 0) => kind switch
    {
        ModelKind.RetriNet => new RetriNet(model.Unet, (retriNet ?? new RetriNetOptions()) with { InitSeed = seed }),
        ModelKind.ControlNet => new ControlNetModel(model.Unet, seed),
        ModelKind.IpAdapter => new IpAdapterModel(model.Unet, ipAdapterScale, seed),
        ModelKind.TextOnly => new TextOnlyModel(model.Unet),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "not a model kind"),
    };

    /// <summary>The model spelled <paramref name="kind"/> (notebooks, files): "unknown model 'x' (did you mean ...)" otherwise.</summary>
    public static IReferenceConditionedModel Create(string kind, DiffusionModel model, RetriNetOptions? retriNet = null, double ipAdapterScale = 1.0, long seed = 0) =>
        Create(Words.Parse<ModelKind>(kind), model, retriNet, ipAdapterScale, seed);

    public static BranchInfo Describe(IReferenceConditionedModel branch) => branch switch
    {
        RetriNet r => new BranchInfo { Kind = r.Kind.Name(), RetriNet = r.Options },
        IpAdapterModel ip => new BranchInfo { Kind = ip.Kind.Name(), IpAdapterScale = ip.Scale },
        _ => new BranchInfo { Kind = branch.Kind.Name() },
    };
}

/// <summary>
/// A reference-model checkpoint is a diffusers folder (the base model with its trained decoder, so Python
/// tools can open it) plus <c>branch.safetensors</c> (every parameter outside the U-Net, diffusers-style
/// names) and <c>branch.json</c> (which family, with its options).
/// </summary>
public static class ReferenceModelStore
{
    public const string BranchWeights = "branch.safetensors";
    public const string BranchConfig = "branch.json";

    public static void Save(DiffusionModel model, IReferenceConditionedModel branch, string folder)
    {
        Directory.CreateDirectory(folder);
        ModelStore.SaveDiffusers(model, folder);
        var tensors = BranchTensors(branch).ToDictionary(kv => kv.Key, kv => kv.Value);
        SafeTensors.Save(Path.Combine(folder, BranchWeights), tensors, new Dictionary<string, string> { ["kind"] = branch.Kind.Name() });
        AtomicFile.WriteAllText(Path.Combine(folder, BranchConfig), JsonSerializer.Serialize(ReferenceModels.Describe(branch), WorkbenchJson.Pretty) + "\n");
    }

    public static (DiffusionModel Model, IReferenceConditionedModel Branch) Load(string folder, Device? device = null)
    {
        var infoPath = Path.Combine(folder, BranchConfig);
        if (!File.Exists(infoPath)) throw new FileNotFoundException($"{folder}: not a reference-model checkpoint (no {BranchConfig}); train one with `retribooru train`", infoPath);
        BranchInfo info;
        try
        {
            info = JsonSerializer.Deserialize<BranchInfo>(RegularFile.ReadAllText(infoPath, "branch config"), WorkbenchJson.Lines)
                   ?? throw new JsonException("the file holds null");
        }
        catch (JsonException e) { throw new InvalidDataException($"{infoPath}: not a branch config ({e.Message})", e); }
        if (!Words.TryParse<ModelKind>(info.Kind, out var kind)) throw new InvalidDataException($"{infoPath}: {Words.Unknown<ModelKind>(info.Kind)}");
        if (info.IpAdapterScale is double scale && !(double.IsFinite(scale) && Math.Abs(scale) <= 100))
            throw new InvalidDataException($"{infoPath}: ip_adapter_scale {scale} must be a finite number in [-100, 100]");
        var model = ModelStore.LoadDiffusers(folder, device);
        try { if (info.RetriNet is not null) ConfigBounds.Check(info.RetriNet, model.Config.Unet, infoPath); }
        catch
        {
            model.Dispose();
            throw;
        }
        var branch = ReferenceModels.Create(kind, model, info.RetriNet, info.IpAdapterScale ?? 1.0);
        LoadBranch(branch, folder);
        return (model, branch);
    }

    public static void LoadWeightsInto(DiffusionModel model, IReferenceConditionedModel branch, string folder)
    {
        ModelStore.LoadWeightsInto(model, folder);
        LoadBranch(branch, folder);
    }

    static void LoadBranch(IReferenceConditionedModel branch, string folder)
    {
        var path = Path.Combine(folder, BranchWeights);
        var expected = BranchTensors(branch).ToList();
        if (expected.Count == 0) return;
        if (!File.Exists(path)) throw new FileNotFoundException($"{folder}: missing {BranchWeights}", path);
        var loaded = SafeTensors.Load(path);
        try
        {
            var missing = expected.Where(kv => !loaded.ContainsKey(kv.Key)).Select(kv => kv.Key).ToList();
            var unexpected = loaded.Keys.Except(expected.Select(kv => kv.Key)).ToList();
            var misshaped = expected.Where(kv => loaded.TryGetValue(kv.Key, out var t) && !t.shape.SequenceEqual(kv.Value.shape)).Select(kv => kv.Key).ToList();
            if (missing.Count + unexpected.Count + misshaped.Count > 0)
                throw new InvalidDataException($"{path}: does not match a {branch.Kind.Name()} model: missing [{string.Join(", ", missing.Take(5))}], unexpected [{string.Join(", ", unexpected.Take(5))}], mis-shaped [{string.Join(", ", misshaped.Take(5))}]");
            using var noGrad = no_grad();
            foreach (var (name, tensor) in expected) tensor.copy_(loaded[name]);
        }
        finally
        {
            foreach (var t in loaded.Values) t.Dispose();
        }
    }

    /// <summary>The branch's own tensors: everything of its module outside the shared U-Net.</summary>
    static IEnumerable<KeyValuePair<string, Tensor>> BranchTensors(IReferenceConditionedModel branch) =>
        branch.Module is UNet2DConditionModel ? []
            : branch.Module.state_dict().Where(kv => !kv.Key.StartsWith("unet.", StringComparison.Ordinal));
}

/// <summary>Guidance and sampling settings for reference-conditioned generation.</summary>
public sealed record ReferenceSamplingOptions
{
    /// <summary>The defaults, which the evaluation protocol's settings (and so `evaluate` and `sample`) take.</summary>
    public static readonly ReferenceSamplingOptions Default = new();

    public int Steps { get; init; } = 25;
    /// <summary>Scale of text guidance (conditioned on the prompt vs the empty prompt, both without references).</summary>
    public double TextScale { get; init; } = 3.0;
    /// <summary>Scale of reference guidance (with vs without references, both with the prompt).</summary>
    public double ReferenceScale { get; init; } = 2.0;
    public double Eta { get; init; }
    public long Seed { get; init; }

    /// <summary>Every field checked before sampling starts; one message naming the field.</summary>
    public void Validate()
    {
        if (Steps is < 1 or > 1000) throw new ArgumentException($"sampling steps must be in [1, 1000], got {Steps}");
        if (!double.IsFinite(TextScale) || TextScale is < 0 or > 50) throw new ArgumentException($"text guidance scale must be a finite number in [0, 50], got {TextScale}");
        if (!double.IsFinite(ReferenceScale) || ReferenceScale is < 0 or > 50) throw new ArgumentException($"reference guidance scale must be a finite number in [0, 50], got {ReferenceScale}");
        if (!double.IsFinite(Eta) || Eta is < 0 or > 1) throw new ArgumentException($"eta must be in [0, 1], got {Eta}");
    }
}

/// <summary>
/// DDIM with classifier-free guidance over text and references, with separate scales:
/// eps = e(empty, none) + s_t (e(prompt, none) - e(empty, none)) + s_r (e(prompt, refs) - e(prompt, none)).
/// The three branches run as one batch. Same seed, same images.
/// </summary>
public static class ReferenceSampler
{
    /// <param name="sampleSeeds">
    /// One seed per sample (deterministic sampling, eta = 0): sample i starts from the noise <paramref name="options"/>
    /// with Seed = sampleSeeds[i] would draw alone, so a sample does not depend on which others share its batch
    /// (beyond float rounding). Null: one generator from options.Seed draws the whole batch.
    /// </param>
    public static Tensor Generate(DiffusionModel model, IReferenceConditionedModel branch, IReadOnlyList<string> prompts,
        IReadOnlyList<IReadOnlyList<ReferenceCrop>> references, ReferenceSamplingOptions options, IProgress<int>? progress = null, IReadOnlyList<long>? sampleSeeds = null)
    {
        if (prompts.Count != references.Count) throw new ArgumentException($"{prompts.Count} prompts but {references.Count} reference sets");
        options.Validate();
        if (sampleSeeds is not null && sampleSeeds.Count != prompts.Count) throw new ArgumentException($"{prompts.Count} prompts but {sampleSeeds.Count} sample seeds");
        if (sampleSeeds is not null && options.Eta != 0) throw new ArgumentException("per-sample seeds need deterministic sampling (eta 0): the per-step noise of a batch comes from one generator");
        TorchRuntime.EnsureLoaded();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var batcher = new ReferenceBatcher(model);
        int b = prompts.Count;
        var schedule = new NoiseSchedule(model.Config.Schedule);
        var sampler = new DdimSampler(schedule);
        var refs = batcher.Build(references);
        var none = refs.WithoutReferences();
        using var featureCache = new ReferenceFeatureCache();
        var tripled = new ReferenceBatch(cat([refs.Images, refs.Images, refs.Images]), cat([refs.ConceptContext, refs.ConceptContext, refs.ConceptContext]),
            cat([none.Present, none.Present, refs.Present])) { Cache = featureCache };
        var contexts = cat([model.EncodePrompts(Enumerable.Repeat("", b).ToList()), model.EncodePrompts(prompts), model.EncodePrompts(prompts)]);
        using var generator = Seeding.TorchGenerator(options.Seed, "reference-sampling");
        var noise = sampleSeeds is null ? randn([b, .. model.SampleShape], generator: generator).to(model.Device)
            : cat(sampleSeeds.Select(seed =>
            {
                using var own = Seeding.TorchGenerator(seed, "reference-sampling");
                return randn([1, .. model.SampleShape], generator: own);
            }).ToArray()).to(model.Device);
        Tensor Denoise(Tensor sample, Tensor t)
        {
            using var step = NewDisposeScope();
            var times = t.dim() == 0 ? t : cat([t, t, t]);
            var output = branch.Predict(cat([sample, sample, sample]), times, contexts, tripled);
            var parts = output.chunk(3);
            var (empty, text, full) = (parts[0], parts[1], parts[2]);
            var guided = empty.Plus((text - empty).Times(options.TextScale)).Plus((full - text).Times(options.ReferenceScale));
            return guided.MoveToOuterDisposeScope();
        }
        var latents = sampler.Sample(Denoise, noise, options.Steps, options.Eta, generator, progress);
        return model.ToImages(latents).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <see cref="Generate"/> with per-sample seeds, the samples split across <paramref name="workers"/> in contiguous groups
    /// (concatenated back in order): each sample is what it would be alone up to float rounding, whatever the split. One
    /// worker, one sample, or a model whose prediction cannot run concurrently: a single <see cref="Generate"/> on this thread.
    /// </summary>
    public static Tensor GenerateSplit(DiffusionModel model, IReferenceConditionedModel branch, IReadOnlyList<string> prompts,
        IReadOnlyList<IReadOnlyList<ReferenceCrop>> references, ReferenceSamplingOptions options, IReadOnlyList<long> sampleSeeds, IReadOnlyList<TorchWorker> workers)
    {
        if (workers.Count <= 1 || prompts.Count <= 1 || !branch.ConcurrentPredict)
            return Generate(model, branch, prompts, references, options, sampleSeeds: sampleSeeds);
        if (prompts.Count != references.Count || prompts.Count != sampleSeeds.Count)
            throw new ArgumentException($"{prompts.Count} prompts, {references.Count} reference sets and {sampleSeeds.Count} seeds: one of each per sample");
        var parts = TorchWorker.RunSplit(workers, prompts.Count, (start, count) =>
            Generate(model, branch, prompts.Skip(start).Take(count).ToList(), references.Skip(start).Take(count).ToList(), options,
                sampleSeeds: sampleSeeds.Skip(start).Take(count).ToList()), release: part => part.Dispose());
        try { return cat(parts, 0); }
        finally { foreach (var part in parts) part.Dispose(); }
    }
}
